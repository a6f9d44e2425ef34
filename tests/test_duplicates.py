"""Near duplicates: the 256-bit difference hash, Hamming grouping, splits that keep re-encoded and
shifted copies together, the audit listing, and the leak count of a split."""

import json

import cv2
import numpy as np
import pandas as pd
import pytest

from crackbench.cli import main
from crackbench.dataset import scan_dataset
from crackbench.duplicates import DEFAULT_NEAR_DISTANCE, image_hash, near_components, near_pairs, nearest_distance
from crackbench.manifest import duplicate_leaks, split_dataset
from crackbench.synthetic import synthetic_image


def _distance(a: str, b: str) -> int:
    return int(np.unpackbits(np.frombuffer(bytes.fromhex(a), np.uint8)
                             ^ np.frombuffer(bytes.fromhex(b), np.uint8)).sum())


def _reencode(gray: np.ndarray, quality: int) -> np.ndarray:
    return cv2.imdecode(cv2.imencode(".jpg", gray, [cv2.IMWRITE_JPEG_QUALITY, quality])[1], cv2.IMREAD_GRAYSCALE)


def _surface(k: int) -> np.ndarray:
    """A 240-px concrete-like patch (the synthetic dataset's texture: grain, stains, illumination)."""
    return cv2.imdecode(np.frombuffer(synthetic_image(np.random.default_rng(k), bool(k % 2), size=240), np.uint8),
                        cv2.IMREAD_GRAYSCALE)


def test_hash_is_stable_under_reencoding_and_small_shifts_and_far_apart_for_other_patches():
    for k in range(8):
        patch = _surface(k)[:227, :227]
        h = image_hash(patch)
        assert len(h) == 64 and h == image_hash(patch.copy())
        assert _distance(h, image_hash(_reencode(patch, 55))) <= DEFAULT_NEAR_DISTANCE / 2
        assert _distance(h, image_hash(_surface(k)[1:228, 2:229])) <= DEFAULT_NEAR_DISTANCE  # 1-2 px shifted
        others = [image_hash(_surface(j)[:227, :227]) for j in range(8, 16)]
        assert min(_distance(h, o) for o in others) > 1.5 * DEFAULT_NEAR_DISTANCE


def test_pairs_components_and_nearest_match_brute_force():
    rng = np.random.default_rng(0)
    bits = rng.integers(0, 2, (60, 256), dtype=np.uint8)
    bits[10] = bits[3]
    bits[11] = bits[3] ^ (np.arange(256) < 5)  # 5 bits from 3
    bits[12] = bits[11] ^ (np.arange(256) >= 250)  # 6 bits from 11, 11 from 3: a chain
    hashes = [np.packbits(b).tobytes().hex() for b in bits]
    hashes[20] = ""  # never hashed: never paired
    brute = {(i, j, _distance(hashes[i], hashes[j])) for i in range(60) for j in range(i + 1, 60)
             if hashes[i] and hashes[j] and _distance(hashes[i], hashes[j]) <= 8}
    assert set(near_pairs(hashes, 8)) == brute == {(3, 10, 0), (3, 11, 5), (10, 11, 5), (11, 12, 6)}
    labels = near_components(hashes, 8)
    assert labels[3] == labels[10] == labels[11] == labels[12] and len(set(labels)) == 57
    nearest = nearest_distance(hashes[:5], hashes[10:])
    assert nearest[3] == 0 and nearest[0] == min(_distance(hashes[0], h) for h in hashes[10:] if h)
    assert (nearest_distance(["", hashes[1]], []) == 257).all()


def _dataset(root):
    """Ten patch pairs across both classes; pair k is a patch and its re-encoded (even k) or 1-2 px
    shifted (odd k) copy, filed under the same class."""
    for label in ("Positive", "Negative"):
        (root / label).mkdir(parents=True)
    for k in range(10):
        surface = _surface(k)
        patch = surface[:227, :227]
        twin = _reencode(patch, 55) if k % 2 == 0 else surface[2:229, 1:228]
        label = ("Positive", "Negative")[k % 2]
        cv2.imwrite(str(root / label / f"p{k}a.png"), patch)
        cv2.imwrite(str(root / label / f"p{k}b.jpg"), twin, [cv2.IMWRITE_JPEG_QUALITY, 90])
    return scan_dataset(root, progress=False)


def test_split_keeps_reencoded_and_shifted_copies_together(tmp_path):
    ds = _dataset(tmp_path / "d")
    assert len(ds.near_duplicate_groups()) == 10 and not ds.duplicate_groups()
    for seed in range(5):
        frame = split_dataset(ds, seed=seed, val=0.2, test=0.2)
        pairs = frame.assign(pair=frame["path"].str.extract(r"(p\d+)[ab]\.")[0]).groupby("pair")["split"].nunique()
        assert (pairs == 1).all()
        assert duplicate_leaks(frame)["test"]["near"] == 0 and duplicate_leaks(frame)["test"]["exact"] == 0
    apart = [split_dataset(ds, seed=s, val=0.2, test=0.2, near_distance=None) for s in range(5)]
    assert any(duplicate_leaks(f)["test"]["near"] > 0 for f in apart)  # without grouping, copies cross over


def test_leaks_count_exact_and_near_copies_of_train_images():
    h = ["0" * 64, "f" * 64, "0" * 63 + "1", "f" * 64]
    frame = pd.DataFrame({"path": list("abcd"), "label": "x", "split": ["train", "test", "test", "test"],
                          "sha256": ["s1", "s2", "s3", "s1"], "group": list("abcd"), "phash": h})
    assert duplicate_leaks(frame, 4)["test"] == {"images": 3, "exact": 1, "near": 1}
    assert duplicate_leaks(frame.assign(phash=""), 4)["test"] == {"images": 3, "exact": 1, "near": None}


def test_audit_and_split_commands_report_near_duplicates(tmp_path, capsys):
    _dataset(tmp_path / "d")
    assert main(["data", "audit", str(tmp_path / "d"), "--json", "--jobs", "1"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["near_duplicate_groups"] == 10 and payload["near_distance"] == DEFAULT_NEAR_DISTANCE
    assert ["Positive/p0a.png", "Positive/p0b.jpg"] in [sorted(g) for g in payload["near_duplicate_group_list"]]
    assert main(["data", "audit", str(tmp_path / "d"), "--near-distance", "off", "--jobs", "1"]) == 0
    assert "near duplicates" not in capsys.readouterr().out
    assert main(["data", "split", str(tmp_path / "d"), "--out", str(tmp_path / "m.csv"), "--jobs", "1"]) == 0
    manifest = pd.read_csv(tmp_path / "m.csv")
    assert list(manifest.columns) == ["path", "label", "split", "sha256", "group", "phash"]
    assert manifest["group"].nunique() == 10
    with pytest.raises(SystemExit):
        main(["data", "split", str(tmp_path / "d"), "--out", str(tmp_path / "m.csv"), "--near-distance", "300"])


def test_duplicates_script_times_hashing_and_tabulates_tolerances(tmp_path, capsys):
    from crackbench.benchmarks import duplicates
    from crackbench.synthetic import make_synthetic_dataset

    folder = make_synthetic_dataset(tmp_path / "d", 40, progress=False)
    assert duplicates.main([str(folder), "--jobs", "1", "--json", str(tmp_path / "r.json")]) == 0
    out = capsys.readouterr().out
    assert "| time_hash: read, decode and hash every image |" in out and "| shifted 2 px |" in out
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["images"] == 40 and sum(h["images"] for h in result["nearest_histogram"]) == 40
    assert [t["tolerance"] for t in result["tolerances"]] == list(duplicates.TOLERANCES)
