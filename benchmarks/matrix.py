"""Several datasets in one benchmark: every model trained on each training set, tested on every test split.

A matrix run folder holds::

    splits/<name>.csv, splits/<name>.skipped.csv   each dataset's own split (test-only sets: all test)
    feature-cache/                                  features shared by every training set's models
    train-<name>/                                   a benchmark run (crackbench.benchmarks.harness) on it
    train-all/                                      with ``train="all"``: on the union of the training sets
    train-<name>/models/<model>/matrix-<test>.json  the model scored on another dataset's test split
    matrix.json                                     every cell, then matrix.md, matrix.html, figures/

Each cell is one model trained on one training set and scored on one dataset's test split, with
balanced accuracy and ROC-AUC (95% bootstrap intervals): real datasets are imbalanced, and plain
accuracy there rewards answering the majority class. The diagonal is in domain; every other cell
is out of domain. Datasets given only for testing are never trained on. Each dataset is split on its
own (with its own ``group_by``), so photo-grouped sets keep whole photographs in one split here too.
Like a single run, a matrix run resumes: finished models and scored cells are reused when their
inputs are the same.

:func:`run_adapt` draws the labels-needed curve: trained on a source dataset plus N labelled images
of a target's training split, scored on the target's test split (``adapt-<N>/``, ``adapt.json``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from crackbench.dataset import DataError, scan_dataset
from crackbench.duplicates import DEFAULT_NEAR_DISTANCE
from crackbench.errors import UsageError
from crackbench.files import write_json
from crackbench.manifest import make_manifest, read_manifest, write_manifest
from crackbench.model import binary_classes, manifest_sha256
from crackbench.registry import load_model

from .harness import PROTOCOL, _log, _predict_batched, run_benchmark
from .metrics import evaluate

__all__ = ["parse_named", "run_adapt", "run_matrix"]


def parse_named(items: list[str] | None, option: str) -> dict[str, str]:
    """``NAME=VALUE`` (or a bare ``VALUE``, named after its last path part) per item, in order."""
    out: dict[str, str] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep:
            name, value = Path(item.rstrip("/")).name, item
        if not name or not value:
            raise UsageError(f"{option} {item!r}: expected NAME=DIR or DIR")
        if name in out or name == "all":
            raise UsageError(f"{option}: the name {name!r} is used twice or reserved; name the datasets NAME=DIR")
        out[name] = value
    return out


def _split(out: Path, name: str, source, *, test_only: bool, seed: int, group_by: str | None,
           near_distance: int | None, progress: bool) -> Path:
    target = out / "splits" / f"{name}.csv"
    target.parent.mkdir(parents=True, exist_ok=True)
    if test_only:
        ds = scan_dataset(source, n_jobs=-1, progress=progress)
        frame = pd.DataFrame([{"path": r.path, "label": r.label, "split": "test", "sha256": r.sha256,
                               "group": f"sha:{r.sha256[:16]}", "phash": r.phash} for r in ds.used])
        if frame.empty:
            raise DataError(f"{source}: no usable images")
        write_manifest(frame, target)
        ds.write_not_used(target.with_name(f"{name}.skipped.csv"))
    else:
        make_manifest(source, target, seed=seed, group_by=group_by, near_distance=near_distance, n_jobs=-1,
                      progress=progress, skipped=target.with_name(f"{name}.skipped.csv"))
    return target


def _union(out: Path, names: list[str], splits: dict[str, Path]) -> Path:
    frames = []
    for name in names:
        frame = read_manifest(splits[name])
        frames.append(frame.assign(group=name + ":" + frame["group"]))
    union = pd.concat(frames, ignore_index=True).sort_values("path", kind="stable")
    return write_manifest(union, out / "splits" / "all.csv")


def _score_cell(run_dir: Path, model_name: str, test_name: str, test_manifest: Path, seed: int) -> dict:
    result = json.loads((run_dir / "models" / model_name / "result.json").read_text())
    frame = read_manifest(test_manifest)
    test = frame[frame["split"] == "test"]
    stamp = {"test_manifest_sha256": manifest_sha256(frame), "model_stamp": result["stamp"],
             "model_file_bytes": result["model_bytes"]}
    cache = run_dir / "models" / model_name / f"matrix-{test_name}.json"
    if cache.is_file():
        try:
            cell = json.loads(cache.read_text())
            if cell.get("stamp") == stamp:
                return cell
        except ValueError:
            pass
    model = load_model(run_dir / result["model_file"])
    if set(test["label"]) - set(model.classes_):
        raise DataError(f"{test_manifest}: labels {sorted(set(test['label']))} are not the model's "
                        f"{model.classes_}; name the class folders alike in every dataset")
    proba, _ = _predict_batched(model, list(test["path"]))
    y = (test["label"] == model.classes_[1]).to_numpy(int)
    cell = {"stamp": stamp, "n": len(y), "positives": int(y.sum()),
            **evaluate(y, proba, n_boot=PROTOCOL["bootstrap_resamples"], seed=seed,
                       threshold=PROTOCOL["threshold"])}
    write_json(cache, cell)
    return cell


def run_matrix(
    out: str | os.PathLike,
    datasets: dict[str, str],
    *,
    test_only: dict[str, str] | None = None,
    train: str | None = None,
    group_by: dict[str, str] | None = None,
    models: list[str] | None = None,
    seed: int = 0,
    near_distance: int | None = DEFAULT_NEAR_DISTANCE,
    n_jobs: int = -1,
    epochs: int = 30,
    cnn_size: int | None = None,
    force: bool = False,
    progress: bool = True,
) -> dict:
    """Train every model on each dataset of ``datasets`` (and, with ``train="all"``, on their union)
    and score it on every dataset's test split, ``test_only`` ones included; see the module
    docstring. ``group_by`` maps dataset names to their ``--group-by`` expressions. Writes and
    returns ``matrix.json``'s content."""
    test_only = test_only or {}
    group_by = group_by or {}
    if not datasets:
        raise UsageError("a matrix run needs at least one training dataset (--data)")
    clash = sorted(set(datasets) & set(test_only))
    unknown = sorted(set(group_by) - set(datasets))
    if clash:
        raise UsageError(f"{', '.join(clash)}: given both for training and only for testing")
    if unknown:
        raise UsageError(f"--group-by names no training dataset: {', '.join(unknown)}")
    if train not in (None, "all"):
        raise UsageError(f"--train {train!r}: expected all (each dataset and their union)")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    splits = {name: _split(out, name, source, test_only=False, seed=seed, group_by=group_by.get(name),
                           near_distance=near_distance, progress=progress) for name, source in datasets.items()}
    splits.update({name: _split(out, name, source, test_only=True, seed=seed, group_by=None,
                                near_distance=None, progress=progress) for name, source in test_only.items()})
    labels = {name: sorted(set(read_manifest(path)["label"])) for name, path in splits.items()}
    if len({tuple(v) for v in labels.values()}) > 1:
        raise DataError("the datasets' class names differ (" + "; ".join(f"{k}: {v}" for k, v in labels.items())
                        + "): name the class folders alike (Positive/ and Negative/)")
    binary_classes(next(iter(labels.values())))
    trains = list(datasets) + (["all"] if train == "all" and len(datasets) > 1 else [])
    if "all" in trains:
        splits["all"] = _union(out, list(datasets), splits)
    cells = []
    for t in trains:
        _log(f"== training set {t} ==")
        run_dir = out / f"train-{t}"
        results = run_benchmark(run_dir, manifest=splits[t], models=models, seed=seed, n_jobs=n_jobs, epochs=epochs,
                                cnn_size=cnn_size, force=force, cache_dir=out / "feature-cache", progress=progress)
        for m in results["models"]:
            for d in [*datasets, *test_only]:
                if d == t:
                    cell = {"n": m["test"]["n"], "positives": int(np.sum(m["test"]["confusion"][1])), **m["test"]}
                else:
                    cell = _score_cell(run_dir, m["name"], d, splits[d], seed)
                cells.append({"model": m["name"], "train": t, "test": d,
                              "in_domain": d == t or (t == "all" and d in datasets),
                              **{k: cell[k] for k in ("n", "positives", "metrics", "confusion")}})
            _log(f"  {m['name']} trained on {t}: " + ", ".join(
                f"{c['test']} {c['metrics']['balanced_accuracy']['value']:.3f}" for c in cells
                if c["model"] == m["name"] and c["train"] == t))
    matrix = {
        "schema": "crackbench-matrix/1",
        "protocol": PROTOCOL,
        "seed": seed,
        "datasets": {name: {"path": str(Path(src).resolve()), "role": "train and test",
                            "group_by": group_by.get(name), "split": f"splits/{name}.csv",
                            "images": {s: int(n) for s, n in read_manifest(splits[name])["split"].value_counts()
                                       .sort_index().items()}} for name, src in datasets.items()},
        "train_sets": trains,
        "cells": cells,
    }
    matrix["datasets"].update({name: {"path": str(Path(src).resolve()), "role": "test only", "group_by": None,
                                      "split": f"splits/{name}.csv",
                                      "images": {"test": len(read_manifest(splits[name]))}}
                               for name, src in test_only.items()})
    env = json.loads((out / f"train-{trains[0]}" / "run.json").read_text())
    matrix["crackbench_version"], matrix["environment"] = env["crackbench_version"], env["environment"]
    write_json(out / "matrix.json", matrix)
    return matrix


def run_adapt(
    out: str | os.PathLike,
    source: tuple[str, str],
    target: tuple[str, str],
    sizes: list[int],
    *,
    group_by: dict[str, str] | None = None,
    models: list[str] | None = None,
    seed: int = 0,
    near_distance: int | None = DEFAULT_NEAR_DISTANCE,
    n_jobs: int = -1,
    epochs: int = 30,
    cnn_size: int | None = None,
    force: bool = False,
    progress: bool = True,
) -> dict:
    """How many labelled images of the user's own data a model needs: for each ``N`` of ``sizes``,
    every model is trained on the source dataset plus ``N`` labelled images drawn from the target's
    training split, and scored on the target's test split (and on the source's). The target is
    split on its own (``group_by`` by name, so photographs stay whole) and its test split is never
    trained on. The ``N`` images are the first ``N`` of one seeded shuffle of the target's training
    split, so each size holds the smaller ones. They join the training split only; model selection
    still uses the source's validation split. Writes and returns ``adapt.json``'s content."""
    group_by = group_by or {}
    (src_name, src_dir), (tgt_name, tgt_dir) = source, target
    if src_name == tgt_name:
        raise UsageError("--adapt names the source dataset; name the target dataset differently (TARGET=DIR)")
    sizes = sorted(set(sizes))
    if not sizes or sizes[0] < 0:
        raise UsageError(f"--adapt-sizes must be numbers >= 0, got {sizes}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    src = _split(out, src_name, src_dir, test_only=False, seed=seed, group_by=group_by.get(src_name),
                 near_distance=near_distance, progress=progress)
    tgt = _split(out, tgt_name, tgt_dir, test_only=False, seed=seed, group_by=group_by.get(tgt_name),
                 near_distance=near_distance, progress=progress)
    source_frame, target_frame = read_manifest(src), read_manifest(tgt)
    if sorted(set(source_frame["label"])) != sorted(set(target_frame["label"])):
        raise DataError(f"class names differ: {src_name} {sorted(set(source_frame['label']))}, {tgt_name} "
                        f"{sorted(set(target_frame['label']))}: name the class folders alike")
    pool = target_frame[target_frame["split"] == "train"].sort_values("path", kind="stable")
    pool = pool.iloc[np.random.default_rng(seed).permutation(len(pool))]
    if sizes[-1] > len(pool):
        raise UsageError(f"--adapt-sizes {sizes[-1]}: {tgt_name}'s training split holds {len(pool)} images")
    cells = []
    for n in sizes:
        _log(f"== {src_name} + {n} labelled {tgt_name} images ==")
        added = pool.iloc[:n].assign(group=tgt_name + ":" + pool["group"].iloc[:n])
        manifest = write_manifest(pd.concat([source_frame.assign(group=src_name + ":" + source_frame["group"]),
                                             added], ignore_index=True), out / "splits" / f"adapt-{n}.csv")
        run_dir = out / f"adapt-{n}"
        results = run_benchmark(run_dir, manifest=manifest, models=models, seed=seed, n_jobs=n_jobs, epochs=epochs,
                                cnn_size=cnn_size, force=force, cache_dir=out / "feature-cache", progress=progress)
        for m in results["models"]:
            cell = _score_cell(run_dir, m["name"], tgt_name, tgt, seed)
            cells.append({"model": m["name"], "n_target": n, "target_positives_added": int(
                (added["label"] == m["classes"][1]).sum()), "target": {k: cell[k] for k in (
                    "n", "positives", "metrics", "confusion")}, "source": {"n": m["test"]["n"],
                                                                           "metrics": m["test"]["metrics"]}})
            _log(f"  {m['name']}: {tgt_name} test balanced accuracy "
                 f"{cell['metrics']['balanced_accuracy']['value']:.3f}")
    adapt = {"schema": "crackbench-adapt/1", "protocol": PROTOCOL, "seed": seed, "source": {
        "name": src_name, "path": str(Path(src_dir).resolve()), "split": f"splits/{src_name}.csv",
        "group_by": group_by.get(src_name)}, "target": {
        "name": tgt_name, "path": str(Path(tgt_dir).resolve()), "split": f"splits/{tgt_name}.csv",
        "group_by": group_by.get(tgt_name), "train_pool": len(pool),
        "test_images": int((target_frame["split"] == "test").sum())}, "sizes": sizes, "cells": cells}
    env = json.loads((out / f"adapt-{sizes[0]}" / "run.json").read_text())
    adapt["crackbench_version"], adapt["environment"] = env["crackbench_version"], env["environment"]
    write_json(out / "adapt.json", adapt)
    return adapt
