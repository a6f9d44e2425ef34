"""The split manifest: the one place where data is split.

A manifest is a CSV with columns ``path,label,split,sha256,group,phash``, one row per used image,
sorted by ``path``. ``path`` is relative to the manifest file's own folder (POSIX separators),
so a manifest and its data can move together. Every later stage (features, pipelines, CNN,
benchmark) reads a manifest; nothing else splits data.

Rules of :func:`split_dataset`:

* stratified: each label is divided in the asked proportions (default 70/15/15);
* exact duplicates (same sha256) always share a split, even across labels;
* near duplicates (difference hashes at most ``near_distance`` bits apart, see
  :mod:`crackbench.duplicates`; chains included) share a split too, unless ``near_distance`` is None;
* with ``group_by``, a regular expression applied to the file name gives a group id
  (``r"^([^-]+)-"`` for SDNET2018's ``<photo>-<patch>.jpg``): a whole group lands in one split;
  groups joined by a duplicate are merged;
* deterministic: the assignment depends only on the set of (path, label, sha256) and the seed,
  never on the file system's listing order, so the same inputs give a byte-identical file.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

from .dataset import DataError, Dataset, scan_dataset
from .duplicates import DEFAULT_NEAR_DISTANCE, near_components, nearest_distance
from .files import atomic_path
from .imageio import DEFAULT_MAX_PIXELS

__all__ = ["COLUMNS", "SPLITS", "duplicate_leaks", "read_manifest", "split_dataset", "write_manifest"]

COLUMNS = ["path", "label", "split", "sha256", "group", "phash"]
SPLITS = ("train", "val", "test")


class _Groups:
    """Union-find over group keys, representative = smallest key (deterministic)."""

    def __init__(self):
        self.parent: dict[str, str] = {}

    def find(self, k: str) -> str:
        self.parent.setdefault(k, k)
        while self.parent[k] != k:
            self.parent[k] = self.parent[self.parent[k]]
            k = self.parent[k]
        return k

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            lo, hi = sorted((ra, rb))
            self.parent[hi] = lo


def _group_keys(rels: list[str], shas: list[str], phashes: list[str], group_by: str | None,
                near_distance: int | None) -> tuple[list[str], int]:
    """Group key per file and the number of files the pattern did not match."""
    keys, unmatched = _pattern_keys(rels, shas, group_by)
    if near_distance is None:
        return keys, unmatched
    groups = _Groups()
    first_in_component: dict[int, str] = {}
    for key, component in zip(keys, near_components(phashes, near_distance), strict=True):
        groups.union(key, first_in_component.setdefault(int(component), key))
    return [groups.find(k) for k in keys], unmatched


def _pattern_keys(rels: list[str], shas: list[str], group_by: str | None) -> tuple[list[str], int]:
    if group_by is None:
        return [f"sha:{s[:16]}" for s in shas], 0
    try:
        pattern = re.compile(group_by)
    except re.error as exc:
        raise DataError(f"--group-by {group_by!r} is not a valid regular expression: {exc}") from None
    keys, unmatched = [], 0
    for rel in rels:
        m = pattern.search(Path(rel).name)
        if m is None:
            unmatched += 1
            keys.append(f"file:{rel}")
        else:
            keys.append(m.group(1) if m.groups() else m.group(0))
    groups = _Groups()
    first_with_sha: dict[str, str] = {}
    for key, sha in zip(keys, shas, strict=True):
        groups.union(key, first_with_sha.setdefault(sha, key))
    return [groups.find(k) for k in keys], unmatched


def split_dataset(
    dataset: Dataset,
    *,
    val: float = 0.15,
    test: float = 0.15,
    seed: int = 0,
    group_by: str | None = None,
    near_distance: int | None = DEFAULT_NEAR_DISTANCE,
) -> pd.DataFrame:
    """Assign every used image of ``dataset`` to train/val/test; see the module docstring.

    Returns a DataFrame with :data:`COLUMNS` where ``path`` is absolute, sorted by path, and
    ``df.attrs["unmatched"]`` counts the files ``group_by`` did not match (each then forms its
    own group).
    """
    for name, frac in (("val", val), ("test", test)):
        if not 0.0 <= frac < 1.0:
            raise DataError(f"--{name} must be in [0, 1), got {frac}")
    if val + test >= 1.0:
        raise DataError(f"val + test must leave some training data, got {val} + {test} = {val + test}")
    used = sorted(dataset.used, key=lambda r: r.rel)
    if not used:
        raise DataError(f"{dataset.root}: no usable images to split")
    rels = [r.rel for r in used]
    labels = [r.label for r in used]
    shas = [r.sha256 for r in used]
    phashes = [r.phash for r in used]
    keys, unmatched = _group_keys(rels, shas, phashes, group_by, near_distance)

    label_names = sorted(set(labels))
    lab_index = {lab: i for i, lab in enumerate(label_names)}
    counts: dict[str, np.ndarray] = defaultdict(lambda: np.zeros(len(label_names)))
    for key, lab in zip(keys, labels, strict=True):
        counts[key][lab_index[lab]] += 1

    fractions = np.array([1.0 - val - test, val, test])
    totals = np.sum(list(counts.values()), axis=0)
    targets = fractions[:, None] * totals[None, :]  # (split, label)
    filled = np.zeros_like(targets)

    ordered = sorted(counts)
    rng = np.random.default_rng(seed)
    ordered = [ordered[i] for i in rng.permutation(len(ordered))]
    ordered.sort(key=lambda k: -counts[k].sum())  # stable: large groups first, ties stay shuffled
    assignment: dict[str, str] = {}
    open_splits = fractions > 0
    for key in ordered:
        c = counts[key]
        with np.errstate(divide="ignore", invalid="ignore"):
            remaining = np.where(targets > 0, (targets - filled) / targets, -np.inf)
        score = np.where(open_splits, (remaining * c[None, :]).sum(axis=1), -np.inf)
        s = int(np.argmax(score))  # ties go to the earlier split: train, val, test
        filled[s] += c
        assignment[key] = SPLITS[s]

    frame = pd.DataFrame({
        "path": [r.path for r in used],
        "label": labels,
        "split": [assignment[k] for k in keys],
        "sha256": shas,
        "group": keys,
        "phash": phashes,
    })
    frame.attrs["unmatched"] = unmatched
    frame.attrs["near_distance"] = near_distance
    return frame


def write_manifest(frame: pd.DataFrame, out: str | os.PathLike) -> Path:
    """Write ``frame`` (absolute paths) as a manifest CSV with paths relative to ``out``'s folder."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    base = out.parent.resolve()
    table = frame[COLUMNS].copy()
    table["path"] = [Path(os.path.relpath(p, base)).as_posix() for p in table["path"]]
    table = table.sort_values("path", kind="stable")
    with atomic_path(out) as tmp:
        table.to_csv(tmp, index=False, lineterminator="\n", encoding="utf-8")
    return out


def read_manifest(path: str | os.PathLike) -> pd.DataFrame:
    """Read a manifest; ``path`` comes back absolute. Raises :class:`DataError` if malformed."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: manifest not found")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    if "phash" not in frame.columns:  # written before crackbench 0.5
        frame["phash"] = ""
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: not a crackbench manifest, missing columns {missing}")
    bad = sorted(set(frame["split"]) - set(SPLITS))
    if bad:
        raise DataError(f"{path}: unknown split values {bad}, expected {list(SPLITS)}")
    base = path.parent.resolve()
    frame["path"] = [str((base / p).resolve()) if not os.path.isabs(p) else p for p in frame["path"]]
    frame.attrs["source"] = str(path.resolve())
    return frame[COLUMNS]


def make_manifest(
    source: str | os.PathLike,
    out: str | os.PathLike,
    *,
    seed: int = 0,
    val: float = 0.15,
    test: float = 0.15,
    group_by: str | None = None,
    near_distance: int | None = DEFAULT_NEAR_DISTANCE,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    strict: bool = False,
    n_jobs: int = -1,
    progress: bool = True,
    skipped: str | os.PathLike | None = None,
) -> tuple[pd.DataFrame, Dataset]:
    """Scan ``source``, split it and write the manifest to ``out`` and the files not used to
    ``skipped`` (default ``<out stem>.skipped.csv``): what ``crackbench data split``, ``train
    --data`` and ``benchmark --data`` all do. Returns the split frame and the scanned dataset."""
    dataset = scan_dataset(source, max_pixels=max_pixels, strict=strict, n_jobs=n_jobs, progress=progress)
    frame = split_dataset(dataset, val=val, test=test, seed=seed, group_by=group_by, near_distance=near_distance)
    out = write_manifest(frame, out)
    dataset.write_not_used(skipped if skipped is not None else out.with_name(out.stem + ".skipped.csv"))
    return frame, dataset


def duplicate_leaks(frame: pd.DataFrame, near_distance: int = DEFAULT_NEAR_DISTANCE) -> dict:
    """How many ``val``/``test`` images of a split have an exact copy (same sha256) or a near
    duplicate (difference hash at most ``near_distance`` bits away) in ``train``: free points for
    a model that memorised its training set. ``None`` counts where the manifest has no hashes."""
    train = frame[frame["split"] == "train"]
    out = {"near_distance": near_distance}
    hashed = bool((frame["phash"] != "").all())
    for split in ("val", "test"):
        part = frame[frame["split"] == split]
        exact = part["sha256"].isin(set(train["sha256"]))
        near = (nearest_distance(list(part["phash"]), list(train["phash"])) <= near_distance) if hashed else None
        out[split] = {"images": len(part), "exact": int(exact.sum()),
                      "near": None if near is None else int((near & ~exact.to_numpy()).sum())}
    return out
