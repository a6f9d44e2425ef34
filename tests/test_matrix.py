"""The train x test matrix over several datasets: per-dataset splits (photo groups kept), every model
trained on each training set and the union, scored on every test split with balanced accuracy equal to
scikit-learn's, test-only sets never trained on, resumable, rendered."""

import json
import shutil

import pandas as pd
import pytest
from sklearn.metrics import balanced_accuracy_score, roc_auc_score

from crackbench.benchmarks import run_matrix, write_matrix_reports
from crackbench.cli import main
from crackbench.errors import UsageError
from crackbench.manifest import read_manifest
from crackbench.registry import load_model
from crackbench.synthetic import make_synthetic_dataset

MODELS = ["edges-svm", "hog-linsvm"]


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("sets")
    a = make_synthetic_dataset(root / "a", 120, seed=1, progress=False)
    raw = make_synthetic_dataset(root / "raw", 100, seed=2, size=256, progress=False)
    b = root / "b"  # SDNET-like names: <photo>-<patch>.jpg, five patches per photo
    for label in ("Positive", "Negative"):
        (b / label).mkdir(parents=True)
        for i, f in enumerate(sorted((raw / label).glob("*.jpg"))):
            shutil.copy(f, b / label / f"{label[0]}{i // 5}-{i % 5}.jpg")
    c = make_synthetic_dataset(root / "c", 30, seed=3, progress=False)
    return a, b, c


@pytest.fixture(scope="module")
def matrix(sets, tmp_path_factory):
    a, b, c = sets
    out = tmp_path_factory.mktemp("matrix") / "m"
    result = run_matrix(out, {"a": str(a), "b": str(b)}, test_only={"c": str(c)}, train="all",
                        group_by={"b": r"^([^-]+)-"}, models=MODELS, n_jobs=1, progress=False)
    write_matrix_reports(out, result)
    return out, result


@pytest.mark.slow
def test_every_model_on_every_training_set_and_test_split(matrix):
    out, result = matrix
    assert result["train_sets"] == ["a", "b", "all"]
    cells = {(c["model"], c["train"], c["test"]): c for c in result["cells"]}
    assert len(cells) == 2 * 3 * 3
    inside = {k[1:] for k, c in cells.items() if c["in_domain"]}
    assert inside == {("a", "a"), ("b", "b"), ("all", "a"), ("all", "b")}
    assert not (out / "train-c").exists()  # test-only: never trained on
    assert (read_manifest(out / "splits" / "c.csv")["split"] == "test").all()
    union = read_manifest(out / "splits" / "all.csv")
    assert len(union) == 220 and set(union["split"]) == {"train", "val", "test"}
    split_b = read_manifest(out / "splits" / "b.csv")
    photo = split_b["path"].str.extract(r"/([PN]\d+)-\d+\.jpg$")[0]
    assert (split_b.groupby(photo)["split"].nunique() == 1).all()  # whole photographs in one split


@pytest.mark.slow
def test_off_diagonal_cells_equal_scikit_learn_on_the_other_test_split(matrix):
    out, result = matrix
    cell = next(c for c in result["cells"] if (c["model"], c["train"], c["test"]) == ("edges-svm", "a", "b"))
    test = read_manifest(out / "splits" / "b.csv").query("split == 'test'")
    model = load_model(out / "train-a" / "models" / "edges-svm" / "model.skops")
    proba = model.predict_proba(list(test["path"]))[:, 1]
    y = (test["label"] == "Positive").to_numpy(int)
    assert cell["n"] == len(test) and cell["positives"] == y.sum()
    assert cell["metrics"]["balanced_accuracy"]["value"] == pytest.approx(balanced_accuracy_score(y, proba >= 0.5))
    assert cell["metrics"]["roc_auc"]["value"] == pytest.approx(roc_auc_score(y, proba))


@pytest.mark.slow
def test_rerun_reuses_cells_and_reports_render(matrix, sets):
    out, result = matrix
    a, b, c = sets
    cache = out / "train-a" / "models" / "edges-svm" / "matrix-c.json"
    before = cache.stat().st_mtime_ns
    again = run_matrix(out, {"a": str(a), "b": str(b)}, test_only={"c": str(c)}, train="all",
                       group_by={"b": r"^([^-]+)-"}, models=MODELS, n_jobs=1, progress=False)
    assert cache.stat().st_mtime_ns == before and again["cells"] == result["cells"]
    md = (out / "matrix.md").read_text()
    assert "## In domain vs out of domain" in md and md.count("| edges-svm |") == 1
    assert "| a | " in md.split("## edges-svm")[1] and (out / "figures" / "matrix.png").is_file()
    assert json.loads((out / "matrix.json").read_text())["schema"] == "crackbench-matrix/1"


def test_matrix_options_are_checked_before_any_work(sets, tmp_path, capsys):
    a, b, c = sets
    with pytest.raises(UsageError, match="both for training and only for testing"):
        run_matrix(tmp_path / "x", {"a": str(a)}, test_only={"a": str(c)})
    assert main(["benchmark", "--data", f"a={a}", "--data", f"a={b}", "--out", str(tmp_path / "y")]) == 1
    assert "used twice" in capsys.readouterr().err
    assert main(["benchmark", "--data", str(a), "--data", str(b), "--test-data", str(c)]) == 1
    assert "--test-data is for a single-dataset run" in capsys.readouterr().err
    assert main(["benchmark", "--data", f"a={a}", "--data", f"b={b}", "--group-by", "x"]) == 1
    assert "name the dataset it is for" in capsys.readouterr().err
    assert not (tmp_path / "y").exists()


@pytest.mark.slow
def test_matrix_from_the_command_line(sets, tmp_path, capsys):
    a, b, c = sets
    out = tmp_path / "cli"
    assert main(["benchmark", "--data", f"a={a}", "--data", f"b={b}", "--test-only", f"c={c}", "--models",
                 "hog-linsvm", "--group-by", "b=^([^-]+)-", "--out", str(out), "--jobs", "1"]) == 0
    printed = capsys.readouterr().out
    assert "In domain vs out of domain" in printed and (out / "matrix.html").is_file()
    cells = pd.DataFrame(json.loads((out / "matrix.json").read_text())["cells"])
    assert len(cells) == 2 * 3 and set(cells["train"]) == {"a", "b"}


@pytest.mark.slow
def test_labels_needed_curve_adds_nested_target_images_and_never_trains_on_the_target_test_split(sets, tmp_path,
                                                                                                 capsys):
    a, b, _ = sets
    out = tmp_path / "adapt"
    assert main(["benchmark", "--data", f"a={a}", "--adapt", f"b={b}", "--adapt-sizes", "0,10,30", "--group-by",
                 "b=^([^-]+)-", "--models", "edges-svm", "--out", str(out), "--jobs", "1"]) == 0
    assert "Balanced accuracy on the test split of b" in capsys.readouterr().out
    adapt = json.loads((out / "adapt.json").read_text())
    assert adapt["sizes"] == [0, 10, 30] and [c["n_target"] for c in adapt["cells"]] == [0, 10, 30]
    target_test = set(read_manifest(out / "splits" / "b.csv").query("split == 'test'")["path"])
    added = {}
    for n in (0, 10, 30):
        manifest = read_manifest(out / "splits" / f"adapt-{n}.csv")
        from_b = manifest[manifest["path"].str.contains("/b/")]
        assert len(from_b) == n and (from_b["split"] == "train").all() and not set(from_b["path"]) & target_test
        added[n] = set(from_b["path"])
        assert (manifest["path"].str.contains("/a/")).sum() == 120  # all of the source, as split on its own
    assert added[10] < added[30]  # each size holds the smaller one's images
    cell = adapt["cells"][0]
    assert cell["target"]["n"] == len(target_test) and 0 <= cell["target"]["metrics"]["balanced_accuracy"]["value"] <= 1
    assert (out / "adapt.md").is_file() and (out / "figures" / "adapt.png").is_file()
    assert main(["benchmark", "--data", f"a={a}", "--adapt", f"b={b}", "--adapt-sizes", "5000", "--models",
                 "edges-svm", "--out", str(out), "--jobs", "1"]) == 1
    assert "training split holds" in capsys.readouterr().err
    assert main(["benchmark", "--data", str(a), "--adapt-sizes", "0,5"]) == 1
