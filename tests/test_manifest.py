import os
import random
import shutil

import numpy as np
import pytest

from crackbench import dataset as dataset_module
from crackbench.dataset import DataError, Dataset, scan_dataset
from crackbench.manifest import COLUMNS, read_manifest, split_dataset, write_manifest

from .conftest import jpeg_bytes


@pytest.fixture
def dup_dir(tmp_path):
    """80 distinct images per class, 10 of them copied under other names (2 across labels), plus
    SDNET-style names '<photo>-<patch>.jpg' with 12 photos."""
    rng = np.random.default_rng(3)
    root = tmp_path / "dups"
    for label in ("Positive", "Negative"):
        (root / label).mkdir(parents=True)
        for i in range(80):
            photo = (i * 7 + (label == "Positive")) % 12
            img = rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)
            (root / label / f"{photo:03d}-{i:03d}.jpg").write_bytes(jpeg_bytes(img))
    for i, src in enumerate(sorted((root / "Positive").iterdir())[:10]):
        shutil.copy(src, root / "Positive" / f"zcopy-{i}.jpg")
    for src in sorted((root / "Positive").iterdir())[20:22]:
        shutil.copy(src, root / "Negative" / f"conflict-{src.name}")
    return root


def test_columns_sorted_paths_and_stratified_proportions(dup_dir, tmp_path):
    frame = split_dataset(scan_dataset(dup_dir, progress=False), seed=0)
    out = write_manifest(frame, tmp_path / "m.csv")
    table = read_manifest(out)
    assert list(table.columns) == COLUMNS
    assert list(table["path"]) == sorted(table["path"])
    for label, part in table.groupby("label"):
        frac = part["split"].value_counts(normalize=True)
        assert frac["train"] == pytest.approx(0.70, abs=0.06), label
        assert frac["test"] == pytest.approx(0.15, abs=0.06), label


def test_exact_duplicates_never_straddle_splits(dup_dir):
    for seed in range(5):
        frame = split_dataset(scan_dataset(dup_dir, progress=False), seed=seed)
        assert (frame.groupby("sha256")["split"].nunique() == 1).all()


def test_group_by_keeps_photos_together_and_merges_duplicates(dup_dir):
    frame = split_dataset(scan_dataset(dup_dir, progress=False), group_by=r"^(\d+)-", seed=2)
    assert (frame.groupby("group")["split"].nunique() == 1).all()
    assert (frame.groupby("sha256")["split"].nunique() == 1).all()
    assert frame.attrs["unmatched"] == 12  # zcopy-* and conflict-* names have no '<digits>-' prefix
    assert set(frame["split"]) == {"train", "val", "test"}


def test_same_seed_byte_identical_under_shuffled_listing(dup_dir, tmp_path, monkeypatch):
    first = write_manifest(split_dataset(scan_dataset(dup_dir, progress=False), seed=7), tmp_path / "a.csv")

    real_scandir, real_walk = os.scandir, os.walk

    class ShuffledScandir:  # like os.scandir's iterator, also a context manager (os.walk uses it)
        def __init__(self, entries):
            self._it = iter(entries)

        def __iter__(self):
            return self

        def __next__(self):
            return next(self._it)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    def shuffled_scandir(path="."):
        with real_scandir(path) as it:
            entries = list(it)
        random.Random(1).shuffle(entries)
        return ShuffledScandir(entries)

    def shuffled_walk(top, **kw):
        for dirpath, dirnames, filenames in real_walk(top, **kw):
            random.Random(2).shuffle(filenames)
            yield dirpath, dirnames, filenames

    monkeypatch.setattr(dataset_module.os, "scandir", shuffled_scandir)
    monkeypatch.setattr(dataset_module.os, "walk", shuffled_walk)
    ds = scan_dataset(dup_dir, progress=False, n_jobs=2)
    random.Random(3).shuffle(ds.records)
    second = write_manifest(split_dataset(ds, seed=7), tmp_path / "b.csv")
    assert first.read_bytes() == second.read_bytes()
    other_seed = write_manifest(split_dataset(ds, seed=8), tmp_path / "c.csv")
    assert other_seed.read_bytes() != first.read_bytes()


def test_manifest_paths_are_relative_to_the_manifest(dup_dir, tmp_path):
    out = write_manifest(split_dataset(scan_dataset(dup_dir, progress=False)), tmp_path / "sub" / "m.csv")
    first_line = out.read_text().splitlines()[1]
    assert first_line.startswith("../dups/")
    assert os.path.isfile(read_manifest(out)["path"].iloc[0])


@pytest.mark.parametrize(("val", "test"), [(0.5, 0.5), (-0.1, 0.2), (0.1, 1.0)])
def test_bad_fractions_rejected(dup_dir, val, test):
    with pytest.raises(DataError):
        split_dataset(scan_dataset(dup_dir, progress=False), val=val, test=test)


def test_empty_dataset_and_bad_regex_rejected(dup_dir):
    with pytest.raises(DataError, match="no usable images"):
        split_dataset(Dataset("x", "folder", [], []))
    with pytest.raises(DataError, match="not a valid regular expression"):
        split_dataset(scan_dataset(dup_dir, progress=False), group_by="(")


def test_read_manifest_rejects_foreign_csv(tmp_path):
    bad = tmp_path / "x.csv"
    bad.write_text("path,label\na.jpg,x\n")
    with pytest.raises(DataError, match="missing columns"):
        read_manifest(bad)
