import numpy as np
import pandas as pd
import pytest

from crackbench.cli import main
from crackbench.dataset import scan_dataset
from crackbench.features import EdgeFeatures, HOGFeatures, LBPFeatures, extract, extractor_key
from crackbench.features import batch as extract_module
from crackbench.imageio import ImageError, read_image
from crackbench.manifest import split_dataset, write_manifest


@pytest.fixture
def small_manifest(synth_dir, tmp_path):
    frame = split_dataset(scan_dataset(synth_dir, progress=False))
    return write_manifest(frame.iloc[::20].reset_index(drop=True), tmp_path / "m.csv")


def _direct(manifest_path, est):
    frame = pd.read_csv(manifest_path)
    base = manifest_path.parent
    return est.transform([read_image(base / p, mode="gray") for p in frame["path"]])


def test_rows_follow_manifest_serial_equals_parallel(small_manifest):
    est = LBPFeatures()
    ref = _direct(small_manifest, est)
    one = extract(small_manifest, est, n_jobs=1, chunk_size=4, progress=False)
    two = extract(small_manifest, est, n_jobs=2, chunk_size=7, progress=False)
    np.testing.assert_array_equal(one, ref)
    np.testing.assert_array_equal(two, ref)


def test_cache_reuses_and_invalidates_only_what_changed(small_manifest, tmp_path, monkeypatch):
    est = EdgeFeatures()
    cache = tmp_path / "cache"
    first = extract(small_manifest, est, n_jobs=1, cache_dir=cache, progress=False)

    calls = []
    real = extract_module._extract_chunk
    monkeypatch.setattr(extract_module, "_extract_chunk", lambda paths, *a: calls.append(len(paths)) or
                        real(paths, *a))
    np.testing.assert_array_equal(extract(small_manifest, est, n_jobs=1, cache_dir=cache, progress=False),
                                  first)
    assert calls == []  # all rows from the cache

    frame = pd.read_csv(small_manifest)
    changed = small_manifest.parent / frame["path"][0]
    changed.write_bytes((small_manifest.parent / frame["path"][1]).read_bytes())
    again = extract(list(small_manifest.parent / frame["path"]), est, n_jobs=1, cache_dir=cache,
                    progress=False)
    assert calls == []  # the new bytes equal another file's: still a cache hit
    np.testing.assert_array_equal(again[0], first[1])

    extract(small_manifest.parent / frame["path"][1:4], EdgeFeatures(canny_thresholds=(50,)), n_jobs=1,
            cache_dir=cache, progress=False)
    assert sum(calls) == 3  # a changed parameter is a new key: computed
    assert extractor_key(EdgeFeatures()) != extractor_key(EdgeFeatures(canny_thresholds=(50,)))


def test_duplicates_are_computed_once(small_manifest, tmp_path, monkeypatch):
    frame = pd.read_csv(small_manifest)
    paths = [small_manifest.parent / p for p in frame["path"][:3]] * 2
    computed = []
    real = HOGFeatures.transform
    monkeypatch.setattr(HOGFeatures, "transform", lambda self, X: computed.append(len(X)) or real(self, X))
    out = extract(paths, HOGFeatures(), n_jobs=1, cache_dir=tmp_path / "c", progress=False)
    np.testing.assert_array_equal(out[:3], out[3:])
    distinct = frame["sha256"][:3].nunique()
    assert sum(computed) == distinct  # six rows listing three files: each distinct file computed once


def test_cache_info_and_clear_and_stale_versions_are_pruned(small_manifest, tmp_path, monkeypatch, capsys):
    import json

    cache = tmp_path / "cache"
    extract(small_manifest, EdgeFeatures(), n_jobs=1, cache_dir=cache, progress=False)
    rows = extract_module.cache_info(cache)
    assert len(rows) == 1 and rows[0]["current"] and rows[0]["rows"] == pd.read_csv(small_manifest)["sha256"].nunique()
    assert main(["cache", "info", "--cache-dir", str(cache), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["feature_sets"][0]["extractor"] == "EdgeFeatures (gray)"
    # a folder an older version wrote (no meta.json) is removed when this version first writes
    old = cache / "0123456789abcdef01234567"
    old.mkdir()
    np.save(old / "x.keys.npy", np.asarray(["a" * 64], "U64"))
    assert not extract_module.cache_info(cache)[0]["current"]
    extract_module._prune_once.cache_clear()
    extract(small_manifest, LBPFeatures(), n_jobs=1, cache_dir=cache, progress=False)
    assert not old.exists() and len(extract_module.cache_info(cache)) == 2
    assert main(["cache", "clear", "--cache-dir", str(cache)]) == 0
    assert extract_module.cache_info(cache) == [] and "removed 2 feature sets" in capsys.readouterr().out


def test_unreadable_file_is_named(tmp_path, small_manifest):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"")
    with pytest.raises(ImageError, match=r"bad\.jpg"):
        extract([bad], LBPFeatures(), n_jobs=1, progress=False)


def test_cli_extract_parquet_and_npz(small_manifest, tmp_path, capsys):
    for out in (tmp_path / "f.parquet", tmp_path / "f.npz"):
        assert main(["features", "extract", "--manifest", str(small_manifest), "--set", "lbp", "--out",
                     str(out), "--jobs", "1", "--cache-dir", str(tmp_path / "cache")]) == 0
    table = pd.read_parquet(tmp_path / "f.parquet")
    npz = np.load(tmp_path / "f.npz")
    assert list(table.columns[:4]) == ["path", "label", "split", "sha256"]
    assert list(table.columns[4:]) == list(npz["names"]) == list(LBPFeatures().get_feature_names_out())
    np.testing.assert_array_equal(table.iloc[:, 4:].to_numpy(np.float32), npz["X"])
    assert main(["features", "list", "--json"]) == 0
    assert "combined" in capsys.readouterr().out
