"""Discover a labelled image dataset and account for every file in it.

A dataset is either a root folder with one sub-folder per class (the Mendeley layout:
``Positive/``, ``Negative/``; images may sit in nested folders below a class folder), or a CSV
file with columns ``path,label`` (paths relative to the CSV's folder, or absolute).

Every entry found ends up in :attr:`Dataset.records` with a status:

* ``used``: decoded fine; its sha256, size and label are recorded.
* ``skipped``: looked like an image (image extension, or listed in the CSV) but cannot be used;
  ``reason`` is one of :mod:`crackbench.imageio`'s codes, or ``undecodable-name`` (a file name
  that is not valid UTF-8, shown with ``\\xNN`` escapes), ``unreadable-folder`` (a folder that
  cannot be listed), and for CSV lists ``empty-path``, ``empty-label`` and ``label-conflict`` (the
  same file listed under two labels: used under neither).
* ``ignored``: not a candidate image: ``hidden`` (name starts with a dot; a hidden folder is
  listed once with its file count), ``not-an-image-extension``, ``outside-class-folder``
  (a file directly in the root), ``duplicate-row`` (a CSV lists the same file again, same label),
  ``symlink-loop`` (a linked folder already scanned or above the dataset: not followed),
  ``symlink-into-dataset`` (a linked folder elsewhere in the dataset: not followed).

Symbolic links to files are read through; named pipes, sockets and devices are never opened.

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

from .duplicates import DEFAULT_NEAR_DISTANCE, image_hash, near_components
from .errors import CrackbenchError
from .files import atomic_path, exit_with_parent
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
    phash: str = ""  # 256-bit difference hash of the grey image (crackbench.duplicates), 64 hex digits


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

    def near_duplicate_groups(self, max_distance: int = DEFAULT_NEAR_DISTANCE) -> list[list[FileRecord]]:
        """Groups (size >= 2) of used files joined by difference hashes at most ``max_distance``
        bits apart (:mod:`crackbench.duplicates`), chains included, with at least two different
        files' bytes (groups of exact copies alone are :meth:`duplicate_groups`); sorted by first path."""
        used = sorted(self.used, key=lambda r: r.rel)
        groups: dict[int, list[FileRecord]] = defaultdict(list)
        for component, rec in zip(near_components([r.phash for r in used], max_distance), used, strict=True):
            groups[component].append(rec)
        return [g for g in groups.values() if len({r.sha256 for r in g}) > 1]

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
            ignored.append(_ignored_entry(root, rel, "", _is_dir(entry)))
        elif _is_dir(entry):
            classes.append(entry.name)
            _walk_class(root, Path(entry.path), entry.name, candidates, ignored)
        else:
            ignored.append(FileRecord(rel, str(root / rel), "", "ignored", "outside-class-folder",
                                      "file in the dataset root; images belong in one folder per class"))
    return classes, candidates, ignored


def _utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # bytes the file system decoding could not map (surrogate escapes)
        return False
    return True


def _shown(name: str) -> str:
    """A name that is not valid UTF-8, printable: the undecodable bytes as ``\\xNN``."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()  # follows a symbolic link; a broken or looping one is not a folder
    except OSError:
        return False


def _walk_class(root: Path, class_dir: Path, label: str, candidates: list, records: list) -> None:
    """Every file below a class folder, depth first in name order. A folder reached through a
    symbolic link is followed only when it lies outside the dataset root (data kept elsewhere)
    and has not been scanned yet: a link back up (``Positive/up -> ..``), into another part of
    the dataset, or to a folder already scanned is recorded as ignored, never followed, so no file
    is picked up twice or under another class's label. Files are only listed here; whether each
    is a readable regular image is decided when it is inspected."""
    real_root, real_class = os.path.realpath(root), os.path.realpath(class_dir)
    seen: set[str] = set()

    def visit(folder: Path, rel_dir: str) -> None:
        seen.add(os.path.realpath(folder))
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            records.append(FileRecord(rel_dir + "/", str(folder), label, "skipped", "unreadable-folder",
                                      f"{type(exc).__name__}: {exc.strerror or exc}; files inside not scanned"))
            return
        for e in entries:
            rel = f"{rel_dir}/{e.name}"
            if not _utf8(e.name):
                shown = _shown(rel)
                records.append(FileRecord(shown, _shown(e.path), label, "skipped", "undecodable-name",
                                          "the name is not valid UTF-8; rename it to use it"))
            elif _is_hidden(e.name):
                records.append(_ignored_entry(root, rel, label, _is_dir(e)))
            elif _is_dir(e):
                target = os.path.realpath(e.path)
                inside_root = target == real_root or target.startswith(real_root + os.sep)
                inside_class = target == real_class or target.startswith(real_class + os.sep)
                above_root = target == real_root or real_root.startswith(target + os.sep)
                if e.is_symlink() and (target in seen or above_root):
                    records.append(FileRecord(rel + "/", e.path, label, "ignored", "symlink-loop",
                                              f"links to {target}, a folder already scanned or one above it; "
                                              f"not followed"))
                elif e.is_symlink() and inside_root and not inside_class:
                    records.append(FileRecord(rel + "/", e.path, label, "ignored", "symlink-into-dataset",
                                              f"links to {target}, elsewhere in the dataset; not followed "
                                              f"(its files would be counted twice or under this label)"))
                else:
                    visit(Path(e.path), rel)
            elif Path(e.name).suffix.lower() not in IMAGE_EXTENSIONS:
                records.append(FileRecord(rel, str(root / rel), label, "ignored", "not-an-image-extension",
                                          f"extension {Path(e.name).suffix or '(none)'!r} is not one of "
                                          f"{', '.join(sorted(IMAGE_EXTENSIONS))}"))
            else:
                candidates.append((rel, label))

    visit(class_dir, class_dir.name)


def _ignored_entry(root: Path, rel: str, label: str, is_dir: bool) -> FileRecord:
    if is_dir:
        n = sum(len(files) for _, _, files in os.walk(root / rel))  # os.walk follows no links
        return FileRecord(rel + "/", str(root / rel), label, "ignored", "hidden",
                          f"hidden folder, {n} files inside not scanned")
    return FileRecord(rel, str(root / rel), label, "ignored", "hidden", "hidden file")


def _discover_csv(csv_path: Path) -> tuple[list[str], list[tuple[str, str]], list[FileRecord], Path]:
    try:
        table = pd.read_csv(csv_path, dtype=str, keep_default_na=False, encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{csv_path}: not UTF-8 text (byte {exc.start}: {exc.reason}); save the list as "
                        f"UTF-8") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{csv_path}: the file is empty; expected a header line 'path,label' and one row per "
                        f"image") from None
    except pd.errors.ParserError as exc:
        raise DataError(f"{csv_path}: not a readable CSV file ({str(exc).strip()})") from None
    missing = {"path", "label"} - set(table.columns)
    if missing:
        raise DataError(f"{csv_path}: expected columns 'path,label', missing {sorted(missing)}")
    root = csv_path.parent.resolve()
    first: dict[str, tuple[int, str]] = {}  # rel -> (row, label) of its first listing
    candidates: dict[str, str] = {}
    ignored: list[FileRecord] = []
    conflicts: dict[str, list[str]] = {}
    for i, (p, label) in enumerate(zip(table["path"], table["label"], strict=True)):
        row = i + 2
        if not p.strip():
            ignored.append(FileRecord(f"(row {row})", "", label, "skipped", "empty-path", f"row {row} has no path"))
            continue
        resolved = (root / p).resolve()
        rel = resolved.relative_to(root).as_posix() if resolved.is_relative_to(root) else str(resolved)
        if not label.strip():
            ignored.append(FileRecord(rel, str(resolved), "", "skipped", "empty-label", f"row {row} has no label"))
            continue
        if rel in first:
            if first[rel][1] == label:
                ignored.append(FileRecord(rel, str(resolved), label, "ignored", "duplicate-row",
                                          f"row {row} lists this file again"))
            else:
                conflicts.setdefault(rel, [f"{first[rel][1]} in row {first[rel][0]}"]).append(f"{label} in row {row}")
            continue
        first[rel] = (row, label)
        candidates[rel] = label
    for rel, where in conflicts.items():
        candidates.pop(rel)
        ignored.append(FileRecord(rel, str((root / rel).resolve()), first[rel][1], "skipped", "label-conflict",
                                  f"listed as {', '.join(where)}; not used under either label"))
    labels = sorted({lab for lab in candidates.values()})
    return labels, sorted(candidates.items()), ignored, root


def _inspect(root: str, rel: str, label: str, max_pixels: int) -> FileRecord:
    path = rel if os.path.isabs(rel) else os.path.join(root, rel)
    sha = ""
    try:
        data = read_bytes(path)
        sha = hashlib.sha256(data).hexdigest()
        img = decode_image(data, mode="gray", max_pixels=max_pixels, name=path)
    except ImageError as exc:
        return FileRecord(rel, path, label, "skipped", exc.reason, exc.detail, sha256=sha)
    return FileRecord(rel, path, label, "used", sha256=sha, height=img.shape[0], width=img.shape[1],
                      phash=image_hash(img))


def _inspect_chunk(root, items, max_pixels):
    exit_with_parent()
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

