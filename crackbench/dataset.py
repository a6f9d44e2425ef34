"""Discover a labelled image dataset and account for every file in it.

A dataset is either a root folder with one sub-folder per class (the Mendeley layout:
``Positive/``, ``Negative/``; images may sit in nested folders below a class folder), or a CSV
file with columns ``path,label`` (paths relative to the CSV's folder, or absolute).

Every entry found ends up in :attr:`Dataset.records` with a status:

* ``used``: decoded fine; its sha256, size and label are recorded.
* ``skipped``: looked like an image (image extension, or listed in the CSV) but cannot be used;
  ``reason`` is one of :mod:`crackbench.imageio`'s codes.
* ``ignored``: not a candidate image: ``hidden`` (name starts with a dot; a hidden folder is
  listed once with its file count), ``not-an-image-extension``, ``outside-class-folder``
  (a file directly in the root), ``duplicate-row`` (a CSV lists the same file twice).

``strict=True`` turns any ``skipped`` record into a :class:`DataError` naming the file; ignored
entries are reported but never fatal.
"""

from __future__ import annotations

import hashlib
import os
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
from joblib import Parallel, delayed
from tqdm.auto import tqdm

from .errors import CrackbenchError
from .files import atomic_path
from .imageio import DEFAULT_MAX_PIXELS, IMAGE_EXTENSIONS, ImageError, decode_image, read_bytes

__all__ = ["DataError", "Dataset", "FileRecord", "scan_dataset"]


class DataError(CrackbenchError):
    """The data cannot be used as asked; the message names the file or folder."""


@dataclass(frozen=True)
class FileRecord:
    """One entry of a dataset: a file (or a hidden folder) and what became of it."""

    rel: str  # path relative to the dataset root, POSIX separators
    path: str  # absolute path
    label: str
    status: str  # "used" | "skipped" | "ignored"
    reason: str = ""
    detail: str = ""
    sha256: str = ""
    height: int = 0
    width: int = 0


@dataclass
class Dataset:
    """The result of :func:`scan_dataset`."""

    root: str
    source: str  # "folder" | "csv"
    classes: list[str]
    records: list[FileRecord]

    def by_status(self, status: str) -> list[FileRecord]:
        return [r for r in self.records if r.status == status]

    @property
    def used(self) -> list[FileRecord]:
        return self.by_status("used")

    def duplicate_groups(self) -> list[list[FileRecord]]:
        """Groups (size >= 2) of used files with identical bytes, sorted by first path."""
        groups: dict[str, list[FileRecord]] = defaultdict(list)
        for rec in self.used:
            groups[rec.sha256].append(rec)
        return sorted((g for g in groups.values() if len(g) > 1), key=lambda g: g[0].rel)

    def label_conflicts(self) -> list[list[FileRecord]]:
        """Duplicate groups whose members carry more than one label."""
        return [g for g in self.duplicate_groups() if len({r.label for r in g}) > 1]

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([asdict(r) for r in self.records], columns=list(FileRecord.__annotations__))

    def write_not_used(self, path: str | os.PathLike) -> int:
        """Write every skipped or ignored entry as CSV ``path,status,reason,detail``; returns
        how many there are (the header alone when all files were used)."""
        table = self.to_frame().query("status != 'used'")[["rel", "status", "reason", "detail"]]
        with atomic_path(path) as tmp:
            table.rename(columns={"rel": "path"}).to_csv(tmp, index=False, lineterminator="\n")
        return len(table)

    def summary(self) -> dict:
        """Counts a person reads first: per class, per status, per reason, sizes, duplicates."""
        used = self.used
        dups = self.duplicate_groups()
        sizes: dict[str, int] = defaultdict(int)
        for r in used:
            sizes[f"{r.width}x{r.height}"] += 1
        reasons: dict[str, int] = defaultdict(int)
        for r in self.records:
            if r.status != "used":
                reasons[f"{r.status}:{r.reason}"] += 1
        return {
            "root": self.root,
            "source": self.source,
            "classes": {c: sum(r.label == c for r in used) for c in self.classes},
            "files": len(self.records),
            "used": len(used),
            "skipped": len(self.by_status("skipped")),
            "ignored": len(self.by_status("ignored")),
            "reasons": dict(sorted(reasons.items())),
            "sizes": dict(sorted(sizes.items(), key=lambda kv: -kv[1])),
            "duplicate_groups": len(dups),
            "duplicate_files": sum(len(g) for g in dups),
            "redundant_copies": sum(len(g) - 1 for g in dups),
            "label_conflicts": len(self.label_conflicts()),
        }


def _is_hidden(name: str) -> bool:
    return name.startswith(".") or name == "__MACOSX"


def _discover_folder(root: Path) -> tuple[list[str], list[tuple[str, str]], list[FileRecord]]:
    """Class names, candidate (rel, label) pairs, and records of what is ignored outright."""
    classes, candidates, ignored = [], [], []
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        rel = entry.name
        if _is_hidden(entry.name):
            ignored.append(_ignored_entry(root, rel, "", entry.is_dir()))
        elif entry.is_dir():
            classes.append(entry.name)
            for dirpath, dirnames, filenames in os.walk(entry.path, followlinks=True):
                rel_dir = Path(dirpath).relative_to(root).as_posix()
                for d in sorted(dirnames):
                    if _is_hidden(d):
                        ignored.append(_ignored_entry(root, f"{rel_dir}/{d}", entry.name, True))
                dirnames[:] = sorted(d for d in dirnames if not _is_hidden(d))
                for f in sorted(filenames):
                    frel = f"{rel_dir}/{f}"
                    if _is_hidden(f):
                        ignored.append(_ignored_entry(root, frel, entry.name, False))
                    elif Path(f).suffix.lower() not in IMAGE_EXTENSIONS:
                        ignored.append(
                            FileRecord(frel, str(root / frel), entry.name, "ignored",
                                       "not-an-image-extension",
                                       f"extension {Path(f).suffix or '(none)'!r} is not one of "
                                       f"{', '.join(sorted(IMAGE_EXTENSIONS))}")
                        )
                    else:
                        candidates.append((frel, entry.name))
        else:
            ignored.append(FileRecord(rel, str(root / rel), "", "ignored", "outside-class-folder",
                                      "file in the dataset root; images belong in one folder per class"))
    return classes, candidates, ignored


def _ignored_entry(root: Path, rel: str, label: str, is_dir: bool) -> FileRecord:
    if is_dir:
        n = sum(len(files) for _, _, files in os.walk(root / rel))
        return FileRecord(rel + "/", str(root / rel), label, "ignored", "hidden",
                          f"hidden folder, {n} files inside not scanned")
    return FileRecord(rel, str(root / rel), label, "ignored", "hidden", "hidden file")


def _discover_csv(csv_path: Path) -> tuple[list[str], list[tuple[str, str]], list[FileRecord], Path]:
    table = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    missing = {"path", "label"} - set(table.columns)
    if missing:
        raise DataError(f"{csv_path}: expected columns 'path,label', missing {sorted(missing)}")
    root = csv_path.parent.resolve()
    seen, candidates, ignored = set(), [], []
    for i, (p, label) in enumerate(zip(table["path"], table["label"], strict=True)):
        if not p or not label:
            raise DataError(f"{csv_path}: row {i + 2} has an empty path or label")
        resolved = (root / p).resolve()
        rel = resolved.relative_to(root).as_posix() if resolved.is_relative_to(root) else str(resolved)
        if rel in seen:
            ignored.append(FileRecord(rel, str(resolved), label, "ignored", "duplicate-row",
                                      f"row {i + 2} lists this file again"))
            continue
        seen.add(rel)
        candidates.append((rel, label))
    return sorted(set(table["label"])), candidates, ignored, root


def _inspect(root: str, rel: str, label: str, max_pixels: int) -> FileRecord:
    path = rel if os.path.isabs(rel) else os.path.join(root, rel)
    sha = ""
    try:
        data = read_bytes(path)
        sha = hashlib.sha256(data).hexdigest()
        img = decode_image(data, mode="gray", max_pixels=max_pixels, name=path)
    except ImageError as exc:
        return FileRecord(rel, path, label, "skipped", exc.reason, exc.detail, sha256=sha)
    return FileRecord(rel, path, label, "used", sha256=sha, height=img.shape[0], width=img.shape[1])


def _inspect_chunk(root, items, max_pixels):
    return [_inspect(root, rel, label, max_pixels) for rel, label in items]


def scan_dataset(
    source: str | os.PathLike,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    strict: bool = False,
    n_jobs: int = 1,
    progress: bool = True,
) -> Dataset:
    """Find, hash and decode every file of a dataset; see the module docstring.

    Parameters
    ----------
    source : path
        A root folder with one sub-folder per class, or a CSV with columns ``path,label``.
    max_pixels : int
        Images larger than this are skipped (``too-large``) without being decoded.
    strict : bool
        Raise :class:`DataError` naming the first unusable image instead of recording it.
    n_jobs : int
        joblib workers for hashing and decoding.
    progress : bool
        Show a progress bar.
    """
    src = Path(source)
    if src.is_dir():
        root = src.resolve()
        classes, candidates, records = _discover_folder(root)
        kind = "folder"
    elif src.is_file() and src.suffix.lower() == ".csv":
        classes, candidates, records, root = _discover_csv(src)
        kind = "csv"
    else:
        raise DataError(f"{source}: expected a folder with one sub-folder per class, or a .csv file "
                        f"with columns path,label")
    chunks = [candidates[i:i + 256] for i in range(0, len(candidates), 256)]
    jobs = (delayed(_inspect_chunk)(str(root), chunk, max_pixels) for chunk in chunks)
    bar = tqdm(total=len(candidates), desc="scan", unit="img", disable=not progress, leave=False)
    for result in Parallel(n_jobs=n_jobs, return_as="generator")(jobs):
        records.extend(result)
        bar.update(len(result))
    bar.close()
    records.sort(key=lambda r: r.rel)
    if strict:
        bad = [r for r in records if r.status == "skipped"]
        if bad:
            raise DataError(f"{bad[0].path}: {bad[0].reason}: {bad[0].detail}"
                            + (f" (and {len(bad) - 1} more unusable files)" if len(bad) > 1 else ""))
    return Dataset(str(root), kind, classes, records)

