"""The model registry, the model interface, and the command line's error policy."""

import importlib.util

import numpy as np
import pytest

from crackbench import registry
from crackbench.cli import main
from crackbench.errors import ModelFileError, UsageError
from crackbench.manifest import make_manifest
from crackbench.model import ImageModel


def _hide_tensorflow(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(registry.importlib.util, "find_spec",
                        lambda name, *a: None if name.split(".")[0] in ("tensorflow", "keras") else real(name, *a))


def test_every_kind_is_one_complete_entry():
    kinds = registry.model_kinds()
    assert {"cnn", "combined-svm", "robust-svm", "robust-rf"} <= set(kinds) and len(kinds) == 12
    for name, kind in kinds.items():
        assert kind.name == name and kind.description and kind.suffix in registry.FILE_FORMATS
        module, func = kind.trainer.split(":")
        assert module.startswith("crackbench.") and func
    with pytest.raises(UsageError, match=r"unknown model 'nope'.*combined-svm"):
        registry.get_kind("nope")


@pytest.fixture(scope="module")
def tiny_manifest(synth_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("reg") / "m.csv"
    frame, _ = make_manifest(synth_dir, out, n_jobs=1, progress=False)
    thin = frame.groupby(["split", "label"], group_keys=False).head(20)
    from crackbench.manifest import write_manifest

    return write_manifest(thin.reset_index(drop=True), out)


def test_train_save_and_load_through_the_registry(tiny_manifest, tmp_path):
    file = tmp_path / "edges.skops"
    model = registry.train_model("edges-svm", tiny_manifest, file, registry.TrainOptions(n_jobs=1, progress=False))
    loaded = registry.load_model(file)
    assert isinstance(loaded, ImageModel) and loaded.name == "edges-svm" == model.name
    with pytest.raises(UsageError, match=r"must end in \.skops"):
        registry.train_model("edges-svm", tiny_manifest, tmp_path / "x.keras")
    with pytest.raises(ModelFileError, match=r"expected one of \.skops, \.keras"):
        registry.load_model(tmp_path / "model.pkl")


def test_single_rgb_image_is_refused_not_split_into_rows(tiny_manifest, tmp_path):
    from crackbench.imageio import read_image
    from crackbench.manifest import read_manifest

    file = tmp_path / "m.skops"
    model = registry.train_model("edges-svm", tiny_manifest, file, registry.TrainOptions(n_jobs=1, progress=False))
    path = read_manifest(tiny_manifest)["path"][0]
    rgb = read_image(path, mode="rgb")
    with pytest.raises(ValueError, match=r"got \(227, 227, 3\); for one image pass X\[np.newaxis\]"):
        model.predict(rgb)
    with pytest.raises(ValueError, match=r"got \(227, 227\)"):
        model.predict(rgb[..., 0])
    assert model.predict(rgb[np.newaxis]).shape == (1,)
    assert model.predict(np.stack([rgb[..., 0]] * 3)).shape == (3,)


def test_models_without_tensorflow_lists_cnn_as_not_installed(monkeypatch, capsys):
    _hide_tensorflow(monkeypatch)
    assert main(["models"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("cnn"))
    assert 'no: model \'cnn\' needs tensorflow, keras: pip install "crackbench[cnn]"' in row


def test_benchmark_without_tensorflow_leaves_the_cnn_out_up_front(monkeypatch, tmp_path, capsys):
    from crackbench.benchmarks import harness

    _hide_tensorflow(monkeypatch)
    kinds = registry.model_kinds()
    monkeypatch.setattr(harness, "model_kinds", lambda: {k: kinds[k] for k in ("edges-svm", "cnn")})
    results = harness.run_benchmark(tmp_path / "r", n_synthetic=60, n_jobs=1, progress=False)
    assert [m["name"] for m in results["models"]] == ["edges-svm"]
    err = capsys.readouterr().err
    first = err.splitlines()[0]
    assert first == 'model \'cnn\' needs tensorflow, keras: pip install "crackbench[cnn]"; benchmarking the others'
    # asked for by name, it is one line before any work
    assert main(["benchmark", "--models", "cnn", "--out", str(tmp_path / "r2")]) == 1
    assert capsys.readouterr().err.strip() == ('crackbench: error: model \'cnn\' needs tensorflow, keras: '
                                               'pip install "crackbench[cnn]"')
    assert not (tmp_path / "r2").exists()


def test_reading_a_keras_file_without_tensorflow_says_what_to_install(monkeypatch, tmp_path, capsys):
    _hide_tensorflow(monkeypatch)
    (tmp_path / "m.keras").write_bytes(b"PK")
    assert main(["predict", "--model", str(tmp_path / "m.keras"), str(tmp_path)]) == 1
    assert 'reading m.keras needs tensorflow, keras: pip install "crackbench[cnn]"' in capsys.readouterr().err


def test_a_bug_keeps_its_traceback_while_user_errors_are_one_line(monkeypatch, tmp_path, capsys):
    from crackbench import cli

    def buggy(args):
        raise ValueError("an internal inconsistency")

    monkeypatch.setattr(cli, "cmd_models", buggy)
    with pytest.raises(ValueError, match="internal inconsistency"):
        main(["models"])
    assert main(["train", "--model", "edges-svm", "--data", str(tmp_path), "--out", str(tmp_path / "m.keras")]) == 1
    assert "must end in .skops" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["data", "split", "X", "--out", "m.csv", "--seed", "-1"], "argument --seed: must be at least 0, got -1"),
    (["data", "audit", "X", "--max-pixels", "-5"], "argument --max-pixels: must be at least 1, got -5"),
    (["data", "split", "X", "--out", "m.csv", "--val", "1.5"], "argument --val: must be in [0, 1), got 1.5"),
    (["benchmark", "--jobs", "0"], "argument --jobs: 0 workers cannot run anything"),
    (["train", "--model", "cnn", "--data", "X", "--out", "m.keras", "--epochs", "0"],
     "argument --epochs: must be at least 1, got 0"),
])
def test_bad_numbers_are_refused_before_any_work_naming_the_argument(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_train_out_that_cannot_be_written_fails_before_scanning(tmp_path, capsys, monkeypatch):
    from crackbench import manifest

    monkeypatch.setattr(manifest, "scan_dataset", lambda *a, **k: pytest.fail("scanned before checking --out"))
    (tmp_path / "dir.skops").mkdir()
    (tmp_path / "file").write_text("x")
    for out, message in ((tmp_path / "dir.skops", "is a folder"),
                         (tmp_path / "file" / "m.skops", "is a file, not a folder")):
        assert main(["train", "--model", "edges-svm", "--data", str(tmp_path), "--out", str(out)]) == 1
        assert message in capsys.readouterr().err
