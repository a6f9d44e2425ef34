"""Bad input, bad arguments, killed runs and memory: every case ends in a recorded reason or one
clear line, never a traceback, a hang or a silently missing file. One corpus per defect class."""

import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from crackbench.cli import main
from crackbench.dataset import DataError, scan_dataset
from crackbench.errors import ModelFileError
from crackbench.imageio import ImageError, decode_image

from .conftest import jpeg_bytes, png_bytes, texture


@contextmanager
def deadline(seconds: int):
    """Fail instead of hanging (a named pipe opened for reading blocks forever)."""
    def fail(*_):
        raise TimeoutError(f"still running after {seconds} s")
    old = signal.signal(signal.SIGALRM, fail)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.fixture
def tricky_tree(tmp_path):
    """A class-folder dataset with links, pipes and odd names; the expected (status, reason) of each."""
    rng = np.random.default_rng(0)
    root, elsewhere = tmp_path / "data", tmp_path / "elsewhere"
    for d in ("Positive", "Negative", "Empty"):
        (root / d).mkdir(parents=True)
    elsewhere.mkdir()
    (elsewhere / "far.jpg").write_bytes(jpeg_bytes(texture(rng)))
    for i in range(3):
        (root / "Positive" / f"p{i}.jpg").write_bytes(jpeg_bytes(texture(rng)))
        (root / "Negative" / f"n{i}.jpg").write_bytes(jpeg_bytes(texture(rng)))
    good = jpeg_bytes(texture(rng))
    (root / "Positive" / "trailing.jpg").write_bytes(good + b"EXIF-ish metadata appended by an editor" * 20)
    (root / "Positive" / "cut.jpg").write_bytes(good[: len(good) // 2])
    (root / "Positive" / "up").symlink_to("..")  # a loop: would relabel Negative/ as Positive
    (root / "Positive" / "neg").symlink_to("../Negative")  # elsewhere in the dataset
    (root / "Positive" / "ext").symlink_to(elsewhere)  # data kept outside: followed
    (root / "Positive" / "dangling.jpg").symlink_to(root / "gone.jpg")
    (root / "Positive" / "loop_a.jpg").symlink_to("loop_b.jpg")
    (root / "Positive" / "loop_b.jpg").symlink_to("loop_a.jpg")
    os.mkfifo(root / "Negative" / "pipe.jpg")
    (root / "Negative" / os.fsdecode(b"caf\xe9.jpg")).write_bytes(jpeg_bytes(texture(rng)))  # Latin-1 name
    (root / "Negative" / "rgb16.png").write_bytes(png_bytes(rng.integers(0, 65535, (9, 9, 3), dtype=np.uint16)))
    (root / "Negative" / "gray16.png").write_bytes(png_bytes(rng.integers(0, 65535, (9, 9), dtype=np.uint16)))
    expected = {
        **{f"Positive/p{i}.jpg": ("used", "") for i in range(3)},
        **{f"Negative/n{i}.jpg": ("used", "") for i in range(3)},
        "Positive/trailing.jpg": ("used", ""),
        "Positive/cut.jpg": ("skipped", "truncated"),
        "Positive/up/": ("ignored", "symlink-loop"),
        "Positive/neg/": ("ignored", "symlink-into-dataset"),
        "Positive/ext/far.jpg": ("used", ""),
        "Positive/dangling.jpg": ("skipped", "unreadable"),
        "Positive/loop_a.jpg": ("skipped", "unreadable"),
        "Positive/loop_b.jpg": ("skipped", "unreadable"),
        "Negative/pipe.jpg": ("skipped", "not-a-regular-file"),
        "Negative/caf\\xe9.jpg": ("skipped", "undecodable-name"),
        "Negative/rgb16.png": ("skipped", "unsupported-depth"),
        "Negative/gray16.png": ("skipped", "unsupported-depth"),
    }
    return root, expected


def test_folder_walking_follows_no_loop_opens_no_pipe_and_accounts_for_everything(tricky_tree):
    root, expected = tricky_tree
    with deadline(60):
        ds = scan_dataset(root, n_jobs=1, progress=False)
    got = {r.rel: (r.status, r.reason) for r in ds.records}
    assert got == expected
    assert {r.label for r in ds.used if r.rel.startswith("Positive/")} == {"Positive"}
    assert ds.label_conflicts() == []  # nothing read twice under two labels
    detail = {r.rel: r.detail for r in ds.records}
    assert detail["Positive/dangling.jpg"] == "broken symbolic link"
    assert detail["Positive/loop_a.jpg"] == "symbolic link loop"


def test_split_with_odd_names_writes_a_manifest_and_reports_empty_classes(tricky_tree, tmp_path, capsys):
    root, expected = tricky_tree
    out = tmp_path / "m.csv"
    with deadline(60):
        assert main(["data", "split", str(root), "--out", str(out), "--jobs", "1", "--json"]) == 0
    captured = capsys.readouterr()
    payload = json.loads(captured.out)
    assert payload["empty_classes"] == ["Empty"] and "class folders with no usable image: Empty" in captured.err
    skipped = pd.read_csv(tmp_path / "m.skipped.csv", keep_default_na=False)
    assert set(skipped["path"]) == {k for k, (s, _) in expected.items() if s != "used"}
    assert len(pd.read_csv(out)) == sum(s == "used" for s, _ in expected.values())


def test_predict_writes_a_row_for_every_file_it_finds(tricky_tree, trained_edges, capsys):
    root, _ = tricky_tree
    with deadline(60):
        code = main(["predict", "--model", str(trained_edges), str(root / "Negative"), str(root / "Positive"),
                     "--json"])
    assert code == 0
    rows = {Path(r["path"]).name: r for r in json.loads(capsys.readouterr().out)["predictions"]}
    assert rows["pipe.jpg"]["error"] == "not-a-regular-file"
    assert rows["dangling.jpg"]["error"] == rows["loop_a.jpg"]["error"] == "unreadable"
    assert rows["rgb16.png"]["error"] == "unsupported-depth" and rows["trailing.jpg"]["error"] == ""
    assert rows["far.jpg"]["error"] == ""  # through the link to data kept elsewhere
    assert os.fsdecode(b"caf\xe9.jpg") in rows  # an odd name is still predicted, not dropped
    assert len([r for r in rows.values() if r["error"] == ""]) >= 8


@pytest.mark.parametrize("content, message", [
    ("path,label\ncaf\xe9.jpg,Positive\n".encode("latin-1"), "not UTF-8 text"),
    (b"", "the file is empty"),
    (b"path,kind\na.jpg,Positive\n", "expected columns 'path,label'"),
])
def test_csv_lists_that_cannot_be_read_are_one_line_naming_the_file(tmp_path, capsys, content, message):
    listing = tmp_path / "list.csv"
    listing.write_bytes(content)
    with pytest.raises(DataError, match=message):
        scan_dataset(listing, progress=False)
    assert main(["data", "split", str(listing), "--out", str(tmp_path / "m.csv")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"crackbench: error: {listing}") and message in err and "\n" not in err


def test_csv_rows_conflicts_duplicates_and_empty_cells_are_recorded(tmp_path):
    rng = np.random.default_rng(1)
    for name in ("a", "b", "c", "d"):
        (tmp_path / f"{name}.jpg").write_bytes(jpeg_bytes(texture(rng)))
    listing = tmp_path / "list.csv"
    listing.write_text("path,label\na.jpg,Positive\nb.jpg,Negative\na.jpg,Negative\nb.jpg,Negative\n"
                       "c.jpg,\n,Positive\nd.jpg,Positive\n")
    ds = scan_dataset(listing, progress=False)
    got = sorted((r.rel, r.status, r.reason) for r in ds.records)
    assert got == [("(row 7)", "skipped", "empty-path"), ("a.jpg", "skipped", "label-conflict"),
                   ("b.jpg", "ignored", "duplicate-row"), ("b.jpg", "used", ""),
                   ("c.jpg", "skipped", "empty-label"), ("d.jpg", "used", "")]
    assert "Positive in row 2, Negative in row 4" in {r.rel: r.detail for r in ds.records}["a.jpg"]


@pytest.mark.parametrize("argv, message", [
    (["data", "split", "DIR", "--out", "OUT_DIR"], "is a folder; give a file name"),
    (["data", "split", "DIR", "--out", "A_FILE/m.csv"], "is a file, not a folder"),
    (["features", "extract", "--manifest", "M", "--set", "lbp", "--out", "f.txt"], "must end in .parquet or .npz"),
    (["features", "extract", "--manifest", "M", "--set", "lbp", "--out", "A_FILE/f.npz"], "is a file, not a folder"),
    (["benchmark", "--out", "A_FILE"], "exists and is not a folder"),
    (["train", "--model", "edges-svm", "--data", "DIR", "--out", "OUT_DIR"], "must end in .skops"),
    (["train", "--model", "nope", "--data", "DIR", "--out", "m.skops"], "unknown model 'nope'"),
])
def test_output_paths_are_checked_before_any_work(tmp_path, capsys, monkeypatch, argv, message):
    from crackbench import manifest

    monkeypatch.setattr(manifest, "scan_dataset", lambda *a, **k: pytest.fail("scanned before checking --out"))
    (tmp_path / "OUT_DIR").mkdir()
    (tmp_path / "A_FILE").write_text("x")
    argv = [str(tmp_path / a) if a in ("OUT_DIR", "A_FILE", "DIR", "M") or a.startswith("A_FILE/") else a
            for a in argv]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
    assert not list(tmp_path.rglob("*.tmp*"))


@pytest.fixture(scope="module")
def trained_edges(synth_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("edges") / "edges.skops"
    assert main(["train", "--model", "edges-svm", "--data", str(synth_dir), "--out", str(out), "--jobs", "1",
                 "--no-cache"]) == 0
    return out


def _keras_zip(path: Path, config: dict | None):
    with zipfile.ZipFile(path, "w") as z:
        if config is not None:
            z.writestr("config.json", json.dumps(config))
            z.writestr("metadata.json", json.dumps({"keras_version": "3.0.0"}))
        z.writestr("crackbench.json", json.dumps({"format": "crackbench-model/1", "kind": "cnn", "name": "cnn",
                                                  "description": "", "crackbench_version": "0", "classes":
                                                  ["Negative", "Positive"], "positive_class": "Positive",
                                                  "input": {"size": 32}, "manifest_sha256": "", "seed": 0,
                                                  "n_train": 1, "n_val": 1, "val_metrics": {}, "timings": {}}))


def _model_files(tmp_path: Path, trained: Path) -> dict[str, str]:
    import skops.io as sio
    from sklearn.linear_model import LogisticRegression

    from crackbench.pipelines import load_model as load_classical

    model = load_classical(trained)
    files = {}
    sio.dump(LogisticRegression().fit([[0], [1]], [0, 1]), tmp_path / "sklearn-object.skops")
    files["sklearn-object.skops"] = "holding a LogisticRegression, not a crackbench model"
    sio.dump({"pipeline": model.pipeline, "metadata": {}}, tmp_path / "empty-metadata.skops")
    files["empty-metadata.skops"] = "not a crackbench model file (metadata without"
    (tmp_path / "random.skops").write_bytes(os.urandom(300))
    files["random.skops"] = "not a readable skops model file"
    (tmp_path / "model.pkl").write_bytes(b"\x80\x04K\x01.")
    files["model.pkl"] = "not a crackbench model file; expected one of .skops, .keras"
    (tmp_path / "notzip.keras").write_bytes(b"plain text")
    files["notzip.keras"] = "not a crackbench CNN model file (BadZipFile)"
    _keras_zip(tmp_path / "no-model.keras", None)
    files["no-model.keras"] = "not a crackbench CNN model file"
    _keras_zip(tmp_path / "unknown-function.keras", {
        "module": "keras", "class_name": "Sequential", "config": {"name": "s", "layers": [
            {"module": "keras.layers", "class_name": "Lambda", "config": {"name": "l", "function": {
                "module": "no.such.module", "class_name": "function", "config": "nowhere"}}}]}})
    files["unknown-function.keras"] = "keras"
    return files


def test_model_files_that_are_not_crackbench_models_are_one_line(tmp_path, trained_edges, capsys):
    pytest.importorskip("keras", reason="the cnn extra is part of the README's test setup")
    image = tmp_path / "x.jpg"
    image.write_bytes(jpeg_bytes(texture(np.random.default_rng(2))))
    for name, message in _model_files(tmp_path, trained_edges).items():
        assert main(["predict", "--model", str(tmp_path / name), str(image)]) == 1, name
        err = capsys.readouterr().err.strip()
        assert err.startswith("crackbench: error:") and "\n" not in err, (name, err)
        assert message.lower() in err.lower(), (name, err)
        from crackbench.registry import load_model

        with pytest.raises(ModelFileError):
            load_model(tmp_path / name)


def test_small_training_set_adapts_the_reduction(synth_dir, tmp_path):
    from crackbench.manifest import make_manifest, write_manifest
    from crackbench.pipelines import train_classical

    frame, _ = make_manifest(synth_dir, tmp_path / "full.csv", n_jobs=1, progress=False)
    small = frame.groupby(["split", "label"], group_keys=False).head(10).reset_index(drop=True)
    manifest = write_manifest(small, tmp_path / "small.csv")  # 20 train, 20 val, 20 test
    for name in ("hog-svm", "combined-svm"):
        model = train_classical(name, manifest, n_jobs=1, progress=False)
        assert model.metadata["adapted_to_small_data"]["pca_components"] == 19, name
    two = small[small["split"] == "train"].groupby("label").head(1).index  # one training image per class
    tiny = write_manifest(small[(small["split"] != "train") | small.index.isin(two)], tmp_path / "t.csv")
    with pytest.raises(DataError, match="needs at least 3 training images"):
        train_classical("hog-svm", tiny, n_jobs=1, progress=False)


def test_predict_chunks_by_decoded_bytes_and_refuses_large_images(tmp_path, trained_edges, capsys):
    from crackbench.model import predict_files
    from crackbench.registry import load_model

    rng = np.random.default_rng(3)
    paths = []
    for i, side in enumerate((40, 400, 60, 900, 50)):
        p = tmp_path / f"{i}.png"
        p.write_bytes(png_bytes(texture(rng, (side, side))))
        paths.append(str(p))
    model = load_model(trained_edges)
    calls = []
    real = model.predict_proba
    model.predict_proba = lambda X: calls.append([x.nbytes for x in X]) or real(X)
    chunked = list(predict_files(model, paths, max_bytes=200_000))
    # no chunk holds more than the budget, except one image larger than it, alone
    assert all(sum(c) <= 200_000 or len(c) == 1 for c in calls) and [900 * 900] in calls, calls
    whole = list(predict_files(model, paths))
    assert [r.probability for r in chunked] == pytest.approx([r.probability for r in whole])
    assert main(["predict", "--model", str(trained_edges), *paths, "--max-pixels", "100000", "--csv"]) == 0
    table = pd.read_csv(__import__("io").StringIO(capsys.readouterr().out), keep_default_na=False)
    assert list(table["error"]) == ["", "too-large", "", "too-large", ""]


def test_predict_on_threads_gives_the_same_rows_in_order_and_shares_the_byte_budget(tmp_path, trained_edges):
    import threading

    from crackbench.model import predict_files
    from crackbench.registry import load_model

    rng = np.random.default_rng(5)
    paths = []
    for i in range(14):
        p = tmp_path / f"{i:02d}.png"
        p.write_bytes(b"not an image" if i % 5 == 2 else png_bytes(texture(rng, (30 + 20 * i, 60))))
        paths.append(str(p))
    model = load_model(trained_edges)
    calls = []
    real = model.predict_proba
    model.predict_proba = lambda X: calls.append((threading.current_thread().name, sum(x.nbytes for x in X),
                                                  len(X))) or real(X)
    one = list(predict_files(model, paths, chunk_size=3, n_jobs=1))
    assert {name for name, _, _ in calls} == {threading.current_thread().name}
    calls.clear()
    two = list(predict_files(model, paths, chunk_size=3, n_jobs=2, max_bytes=40_000))
    assert one == two and [r.path for r in two] == paths  # same rows, same order, bad files included
    assert sum(bool(r.error) for r in two) == 3
    assert len({name for name, _, _ in calls}) == 2  # both threads predicted
    assert all(nbytes <= 20_000 or n == 1 for _, nbytes, n in calls)  # each thread keeps to half the budget


def test_decoding_policy_one_rule_for_depth_and_trailing_bytes():
    rng = np.random.default_rng(4)
    img = texture(rng, (20, 20, 3))
    jpg = jpeg_bytes(img)
    assert decode_image(jpg + b"\0" * 1000).shape == (20, 20, 3)
    exif_like = jpg[:2] + b"\xff\xe1\x00\x10" + b"thumb\xff\xd9rest" + jpg[2:]  # an end marker inside APP1
    with pytest.raises(ImageError, match="truncated"):
        decode_image(exif_like[: len(exif_like) - 200])
    for deep in (rng.integers(0, 65535, (8, 8), dtype=np.uint16), rng.integers(0, 65535, (8, 8, 3), dtype=np.uint16)):
        with pytest.raises(ImageError) as exc:
            decode_image(cv2.imencode(".png", deep)[1].tobytes())
        assert exc.value.reason == "unsupported-depth"


@pytest.mark.slow
def test_workers_exit_when_the_main_process_is_killed(synth_dir, tmp_path):
    """SIGKILL of crackbench's own process: its joblib workers notice and exit within seconds."""
    cmd = [sys.executable, "-m", "crackbench", "features", "extract", "--manifest", str(tmp_path / "m.csv"),
           "--set", "lbp", "--out", str(tmp_path / "f.npz"), "--no-cache", "--jobs", "2"]
    assert main(["data", "split", str(synth_dir), "--out", str(tmp_path / "m.csv"), "--jobs", "1"]) == 0
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    children: set[int] = set()
    end = time.monotonic() + 60
    while not children and time.monotonic() < end and proc.poll() is None:
        time.sleep(0.1)
        try:
            for task in os.listdir(f"/proc/{proc.pid}/task"):
                children |= {int(c) for c in Path(f"/proc/{proc.pid}/task/{task}/children").read_text().split()}
        except OSError:
            pass
    assert children, "no worker process started"
    time.sleep(1.0)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    end = time.monotonic() + 15
    while time.monotonic() < end and any(Path(f"/proc/{c}").exists() and "Z" not in
                                         Path(f"/proc/{c}/stat").read_text().split()[2] for c in children
                                         if Path(f"/proc/{c}/stat").exists()):
        time.sleep(0.2)
    alive = [c for c in children if Path(f"/proc/{c}/stat").exists()
             and Path(f"/proc/{c}/stat").read_text().split()[2] != "Z"]
    names = {c: Path(f"/proc/{c}/cmdline").read_bytes().replace(b"\0", b" ")[:200] for c in alive}
    assert not alive, f"workers still running 15 s after the main process was killed: {names}"


def test_a_folder_that_cannot_be_listed_is_recorded(tricky_tree, monkeypatch):
    """(Permissions cannot make a folder unlistable for root, who runs CI: the listing fails here by
    substitution, as it would for a user without read permission.)"""
    from crackbench import dataset

    root, _ = tricky_tree
    (root / "Negative" / "locked").mkdir()
    (root / "Negative" / "locked" / "x.jpg").write_bytes(b"never read")
    real = os.scandir

    def scandir(path):
        if Path(path).name == "locked":
            raise PermissionError(13, "Permission denied")
        return real(path)

    monkeypatch.setattr(dataset.os, "scandir", scandir)
    ds = scan_dataset(root, n_jobs=1, progress=False)
    row = next(r for r in ds.records if r.rel == "Negative/locked/")
    assert (row.status, row.reason) == ("skipped", "unreadable-folder") and "Permission denied" in row.detail
