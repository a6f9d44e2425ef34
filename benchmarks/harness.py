"""Train and evaluate every model on one manifest; write results a run at a time, resumably.

A run folder holds::

    manifest.csv, manifest.skipped.csv   the split every model shares (written once)
    synthetic/                           the generated default dataset, when no --data is given
    feature-cache/                       features shared by the classical models of this run
    models/<name>/model.{skops,keras}    each trained model ...
    models/<name>/result.json            ... and its results, written atomically when it finishes
    models/<name>/predictions.csv        per-image test (and cross-dataset) probabilities
    models/cnn/                          + TensorBoard logs, history.csv, training_curves.png
    synthetic-photos/                    generated whole photos with crack masks (default run)
    models/<name>/scan/                  each model's scan of the whole photos (crackbench scan's files)
    results.json, results.csv, report.md, report.html, figures/

A model whose ``result.json`` exists is skipped when the same command runs again (``force``
redoes it), so an interrupted run loses nothing that finished. It is redone instead when its
stamp differs (another crackbench version, seed, library version, ``--test-data``, or an option
the model kind names in the registry, such as the CNN's epochs and input size), or when the file
cannot be read. The split itself is checked byte for byte.

Whole photos (``scan_data``, a folder with ``images/`` and ``masks/``; generated in the default
run): every model scans every photo tile by tile (:func:`crackbench.scan.scan_files`) and its
tiles are scored against the masks. The scan is redone for a finished model only when the photos
or the scan settings changed, never retraining it.

Compute, then render: this module computes everything into ``results.json``
(:func:`collect_results`); :mod:`crackbench.benchmarks.report` renders the reports from that
file alone.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import platform
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_curve

from crackbench import __version__
from crackbench.dataset import DataError, scan_dataset
from crackbench.duplicates import DEFAULT_NEAR_DISTANCE
from crackbench.errors import UsageError
from crackbench.files import atomic_path, write_json
from crackbench.manifest import duplicate_leaks, make_manifest, read_manifest, write_manifest
from crackbench.model import ImageModel, binary_classes, manifest_sha256
from crackbench.registry import ModelKind, TrainOptions, get_kind, load_model, model_kinds, train_model
from crackbench.scan import MIN_CRACK_FRACTION

from .metrics import evaluate, mcnemar

__all__ = ["PROTOCOL", "collect_results", "run_benchmark", "select_models", "time_calls"]

#: How every model is measured; recorded in results.json, where the report reads it.
PROTOCOL = {
    "threshold": 0.5,  # P(positive) at or above it: predicted positive
    "bootstrap_resamples": 1000,  # of the test images, for the 95% percentile intervals
    "latency_images": 200,  # one file -> label at a time, decode included ...
    "latency_warmup": 20,  # ... after this many warm-up calls
    "throughput_batch": 256,  # files per predict_proba call, decode included
    "mistakes_listed": 8,  # most confident mistakes per model, for the report's gallery
}


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class PeakMemory:
    """Peak resident memory (MiB) of this process and its children (joblib workers) while active,
    sampled every 20 ms from /proc (Linux; elsewhere ru_maxrss of this process)."""

    def __init__(self):
        self.peak = 0.0
        self._stop = threading.Event()

    @staticmethod
    def _rss(pid: int) -> float:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) / 1024
        except OSError:
            pass
        return 0.0

    @classmethod
    def _tree(cls, pid: int) -> float:
        total = cls._rss(pid)
        try:
            for task in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{task}/children") as f:
                    total += sum(cls._tree(int(c)) for c in f.read().split())
        except OSError:
            pass
        return total

    def _run(self):
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self._tree(os.getpid()))

    def __enter__(self):
        if os.path.exists("/proc/self/status"):
            self.peak = self._tree(os.getpid())
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if hasattr(self, "_thread"):
            self._thread.join()
        else:
            import resource

            self.peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return False


def time_calls(calls: dict, paths: list, warmup: int) -> dict:
    """Per-call milliseconds of each named ``fn(path)``, one path at a time: p50/p95 over
    ``paths`` after calling every function on ``paths[:warmup]``.

    The functions alternate path by path; ``NAME`` and ``NAME_sklearn`` swap places on every
    other path, so neither side always runs second, on warm caches.
    """
    names = list(calls)
    swapped = names.copy()
    for i, name in enumerate(names[:-1]):
        if names[i + 1] == f"{name}_sklearn":
            swapped[i], swapped[i + 1] = names[i + 1], name
    for path in paths[:warmup]:
        for fn in calls.values():
            fn(path)
    times = {name: [] for name in calls}
    for k, path in enumerate(paths):
        for name in swapped if k % 2 else names:
            start = time.perf_counter()
            calls[name](path)
            times[name].append((time.perf_counter() - start) * 1e3)
    return {name: {"p50_ms": float(np.percentile(t, 50)), "p95_ms": float(np.percentile(t, 95)), "n": len(t),
                   "warmup": min(warmup, len(paths))} for name, t in times.items()}


def _latency(model: ImageModel, paths: list[str]) -> dict:
    """File -> label, decode included, one image at a time: p50/p95 over PROTOCOL's latency images
    after its warm-up calls."""
    n = PROTOCOL["latency_images"]
    sample = (paths * (n // max(len(paths), 1) + 1))[:n]
    return time_calls({"predict": lambda p: model.predict([p])}, sample, PROTOCOL["latency_warmup"])["predict"]


def _predict_batched(model: ImageModel, paths: list[str]) -> tuple[np.ndarray, float]:
    """Positive-class probabilities for ``paths`` (decode included) and throughput in images/s."""
    batch = PROTOCOL["throughput_batch"]
    start = time.perf_counter()
    proba = np.concatenate([model.predict_proba(paths[i:i + batch])[:, 1] for i in range(0, len(paths), batch)])
    return proba, len(paths) / (time.perf_counter() - start)


def _run_model(kind: ModelKind, run_dir: Path, manifest: pd.DataFrame, manifest_path: Path,
               cross: pd.DataFrame | None, options: TrainOptions, stamp: dict) -> dict:
    name = kind.name
    model_dir = run_dir / "models" / name
    model_dir.mkdir(parents=True, exist_ok=True)
    path = model_dir / f"model{kind.suffix}"
    with PeakMemory() as mem:
        start = time.perf_counter()
        train_model(name, manifest_path, path, options, work_dir=model_dir)
        train_wall = time.perf_counter() - start
    model = load_model(path)  # evaluate what a user would load, not the in-memory object
    classes = model.classes_
    threshold = PROTOCOL["threshold"]
    start = time.perf_counter()
    test = manifest[manifest["split"] == "test"]
    test_paths = list(test["path"])
    y_test = (test["label"] == classes[1]).to_numpy(int)
    proba, throughput = _predict_batched(model, test_paths)
    meta = model.metadata
    result = {
        "name": name,
        "stamp": stamp,
        "kind": meta["kind"],
        "description": meta["description"],
        "device": meta.get("device", "CPU"),
        "model_file": str(path.relative_to(run_dir)),
        "model_bytes": path.stat().st_size,
        "classes": classes,
        "best_params": meta.get("best_params", meta.get("params")),
        "val_metrics": meta["val_metrics"],
        "timings": {**meta["timings"], "train_wall_s": train_wall},
        "peak_rss_mib": mem.peak,
        "test": evaluate(y_test, proba, n_boot=PROTOCOL["bootstrap_resamples"], seed=options.seed,
                         threshold=threshold),
        "throughput_img_s": throughput,
        "latency": _latency(model, test_paths),
    }
    for key in ("epochs_run", "best_epoch"):
        if key in meta:
            result[key] = meta[key]
    rows = pd.DataFrame({"set": "test", "path": test_paths, "label": test["label"].to_numpy(),
                         "proba": proba})
    if cross is not None:
        y_cross = (cross["label"] == classes[1]).to_numpy(int)
        cross_proba, _ = _predict_batched(model, list(cross["path"]))
        result["cross"] = evaluate(y_cross, cross_proba, n_boot=PROTOCOL["bootstrap_resamples"],
                                   seed=options.seed, threshold=threshold)
        rows = pd.concat([rows, pd.DataFrame({"set": "cross", "path": cross["path"].to_numpy(),
                                              "label": cross["label"].to_numpy(), "proba": cross_proba})])
    result["timings"]["evaluate_s"] = time.perf_counter() - start
    with atomic_path(model_dir / "predictions.csv") as tmp:
        rows.to_csv(tmp, index=False)
    write_json(model_dir / "result.json", result)  # last: marks the model finished
    return result


def _prepare_manifest(run_dir: Path, data, manifest, seed: int, n_synthetic: int, group_by: str | None,
                      near_distance: int | None, progress: bool) -> tuple[Path, dict]:
    target = run_dir / "manifest.csv"
    if manifest is not None:
        frame = read_manifest(manifest)
        source = {"kind": "manifest", "path": str(Path(manifest).resolve())}
        fresh = target.with_name("manifest.new.csv")
        write_manifest(frame, fresh)
    else:
        if data is None:
            from crackbench.synthetic import make_synthetic_dataset

            data = run_dir / "synthetic"
            if not (data / "Positive").is_dir():
                _log(f"generating {n_synthetic} synthetic images in {data}")
                make_synthetic_dataset(data, n_synthetic, seed=seed, progress=progress)
            source = {"kind": "synthetic", "path": str(data), "n": n_synthetic}
        else:
            source = {"kind": "folder", "path": str(Path(data).resolve())}
        fresh = target.with_name("manifest.new.csv")
        _, ds = make_manifest(data, fresh, seed=seed, group_by=group_by, near_distance=near_distance, n_jobs=-1,
                              progress=progress, skipped=run_dir / "manifest.skipped.csv")
        source["not_used"] = len(ds.records) - len(ds.used)
    if target.exists() and target.read_bytes() != fresh.read_bytes():
        fresh.unlink()
        raise DataError(f"{target} differs from the split this command makes now (the data or the seed "
                        f"changed since this run started): use another --out, or --force to start over")
    os.replace(fresh, target)
    return target, source


#: Photos generated for the default run's whole-photo scan: (count, width, height).
SYNTHETIC_PHOTOS = (3, 1600, 1200)


def _prepare_scan_data(run_dir: Path, scan_data, generate: bool, seed: int, tile: int, progress: bool
                       ) -> dict | None:
    """What the whole-photo scan reads: ``scan_data``'s ``images/`` (and ``masks/``), or generated
    photos when ``generate``; ``None`` for no scan."""
    from crackbench.model import iter_image_files

    if scan_data is None and not generate:
        return None
    if scan_data is None:
        from crackbench.synthetic import make_synthetic_photos

        scan_data = run_dir / "synthetic-photos"
        n, width, height = SYNTHETIC_PHOTOS
        if len(list((scan_data / "masks").glob("*.png"))) != n:
            _log(f"generating {n} synthetic {width}x{height} photos with crack masks in {scan_data}")
            make_synthetic_photos(scan_data, n, seed=seed, width=width, height=height, progress=progress)
        kind = "synthetic"
    else:
        kind = "folder"
    root = Path(scan_data)
    if not (root / "images").is_dir():
        raise DataError(f"--scan-data {root}: expected a folder with images/ (photos) and masks/ (crack masks)")
    photos = list(iter_image_files([root / "images"]))
    if not photos:
        raise DataError(f"--scan-data {root}: no image files in {root / 'images'}")
    masks = root / "masks" if (root / "masks").is_dir() else None
    digest = hashlib.sha256()
    for f in sorted([*photos, *(iter_image_files([masks]) if masks else [])]):
        digest.update(f"{os.path.relpath(f, root)}\0".encode())
        digest.update(hashlib.sha256(Path(f).read_bytes()).digest())
    return {"kind": kind, "path": str(root.resolve()), "photos": photos, "masks": str(masks) if masks else None,
            "n_photos": len(photos), "sha256": digest.hexdigest(), "tile": tile, "stride": max(1, tile // 2),
            "threshold": PROTOCOL["threshold"], "min_crack_fraction": MIN_CRACK_FRACTION}


def _scan_model(run_dir: Path, name: str, scan: dict, progress: bool) -> None:
    """Scan the whole photos with a finished model and add the summary to its result.json, unless
    it already holds the scan of these photos with these settings."""
    from crackbench.scan import scan_files

    path = run_dir / "models" / name / "result.json"
    result = json.loads(path.read_text())
    stamp = {k: scan[k] for k in ("sha256", "tile", "stride", "threshold", "min_crack_fraction")}
    if result.get("scan", {}).get("stamp") == stamp:
        return
    out = run_dir / "models" / name / "scan"
    model = load_model(run_dir / result["model_file"])
    start = time.perf_counter()
    payload = scan_files(model, scan["photos"], out, tile=scan["tile"], stride=scan["stride"],
                         threshold=scan["threshold"], masks=scan["masks"],
                         min_crack_fraction=scan["min_crack_fraction"], progress=progress)
    wall = time.perf_counter() - start  # photos may be scanned side by side: their own seconds overlap
    done = [r for r in payload["photos"] if not r["error"]]
    result["scan"] = {
        "stamp": stamp, "photos": len(done), "errors": len(payload["photos"]) - len(done),
        "tiles": sum(r["tiles"] for r in done), "flagged_tiles": sum(r["cracked_tiles"] for r in done),
        "seconds": wall, "megapixels": sum(r["width"] * r["height"] for r in done) / 1e6,
        "overlays": [str((out / f"{r['outputs']}.overlay.jpg").relative_to(run_dir)) for r in done],
        "evaluation": (payload.get("evaluation") or {}).get("overall"),
        # the grid in photo pixels: a CNN that runs fully convolutionally rounds the stride to its pooling step
        "grid": {k: done[0][k] for k in ("tile_px", "stride_px")} if done else None,
    }
    write_json(path, result)
    ev = result["scan"]["evaluation"]
    _log(f"  {name}: scanned {len(done)} photos" + (f", tile ROC-AUC {ev['roc_auc']:.4f}, crack-pixel recall "
                                                     f"{ev['crack_pixel_recall']:.4f}" if ev else ""))


def _stamp(kind: ModelKind, options: TrainOptions, test_data_sha256: str | None) -> dict:
    """What a finished model's results depend on besides the split (which is checked byte for
    byte): versions, seed, cross-dataset images, and the options the kind names."""
    return {"crackbench_version": __version__, "seed": options.seed, "libraries": kind.libraries(),
            "test_data_sha256": test_data_sha256,
            **{opt: getattr(options, opt) for opt in kind.stamp_options}}


def _finished(path: Path, stamp: dict) -> tuple[bool, str]:
    """Whether ``path`` (a result.json) holds a finished result made with ``stamp``, and if not, why."""
    if not path.exists():
        return False, ""
    try:
        before = json.loads(path.read_text()).get("stamp")
    except (OSError, ValueError, AttributeError) as exc:
        return False, f"{path} cannot be read ({type(exc).__name__}: {exc}): redoing it"
    if before != stamp:
        changed = sorted(k for k in {*stamp, *(before or {})} if (before or {}).get(k) != stamp.get(k))
        return False, f"the earlier result differs in {', '.join(changed)}: redoing it"
    return True, ""


def select_models(names: list[str] | None) -> tuple[list[ModelKind], list[str]]:
    """The kinds to run: the named ones (each must be installed), or every installed kind.

    Returns the kinds and one line per kind left out because an optional extra is missing.
    """
    if names:
        kinds = [get_kind(n) for n in names]
        missing = [k.unavailable_reason() for k in kinds if not k.available]
        if missing:
            raise UsageError("; ".join(missing))
        return kinds, []
    everything = list(model_kinds().values())
    return ([k for k in everything if k.available],
            [f"{k.unavailable_reason()}; benchmarking the others" for k in everything if not k.available])


def _dataset_hash(frame: pd.DataFrame) -> str:
    """sha256 over the sorted file digests: identifies the images, whatever their paths."""
    return hashlib.sha256("\n".join(sorted(frame["sha256"])).encode()).hexdigest()


def _environment() -> dict:
    import cv2
    import sklearn

    env = {"python": platform.python_version(), "platform": platform.platform(), "cpu": platform.processor(),
           "cores": os.cpu_count(), "crackbench": __version__, "numpy": np.__version__,
           "scikit-learn": sklearn.__version__, "opencv": cv2.__version__, "pandas": pd.__version__}
    try:
        with open("/proc/cpuinfo") as f:
            env["cpu"] = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), env["cpu"])
    except OSError:
        pass
    if "tensorflow" in sys.modules:
        env["tensorflow"] = sys.modules["tensorflow"].__version__
    return env


def _decode_pass(paths: list[str], n_jobs: int) -> float:
    """Seconds to read and decode every image once (no features): the decode phase."""
    from crackbench.features import extract
    from crackbench.features.batch import DecodeOnly

    start = time.perf_counter()
    extract(paths, DecodeOnly(), n_jobs=n_jobs, progress=False)
    return time.perf_counter() - start


def run_benchmark(
    out: str | os.PathLike,
    *,
    data=None,
    manifest=None,
    models: list[str] | None = None,
    test_data=None,
    seed: int = 0,
    force: bool = False,
    n_jobs: int = -1,
    epochs: int = 30,
    cnn_size: int | None = None,
    n_synthetic: int = 2000,
    group_by: str | None = None,
    near_distance: int | None = DEFAULT_NEAR_DISTANCE,
    scan_data=None,
    scan_tile: int = 227,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> dict:
    """Run the benchmark into ``out``; returns the collected results (also in ``results.json``).

    Parameters mirror ``crackbench benchmark``: with neither ``data`` nor ``manifest`` the
    synthetic default dataset (``n_synthetic`` images) is generated into the run folder. Without
    ``models``, every model kind whose optional extra is installed runs (one line says which were
    left out). ``scan_data`` (a folder with ``images/`` and ``masks/``) adds a whole-photo scan by
    every model, with ``scan_tile``-pixel tiles; the default run scans generated photos. Features
    are cached in ``cache_dir`` (default: the run folder's ``feature-cache/``). The reports are
    rendered by :func:`crackbench.benchmarks.report.write_reports`.
    """
    if data is not None and manifest is not None:
        raise UsageError("give --data or --manifest, not both")
    kinds, left_out = select_models(models)
    for line in left_out:
        _log(line)
    run_dir = Path(out)
    run_dir.mkdir(parents=True, exist_ok=True)
    if force:
        for f in run_dir.glob("models/*/result.json"):
            f.unlink()
        (run_dir / "manifest.csv").unlink(missing_ok=True)
    models = [k.name for k in kinds]
    options = TrainOptions(seed=seed, n_jobs=n_jobs, cache_dir=Path(cache_dir or run_dir / "feature-cache"),
                           epochs=epochs, image_size=cnn_size, progress=progress)
    wall = time.perf_counter()
    manifest_path, source = _prepare_manifest(run_dir, data, manifest, seed, n_synthetic, group_by, near_distance,
                                              progress)
    frame = read_manifest(manifest_path)
    binary_classes(frame["label"])  # fail early on a dataset that is not binary
    cross = None
    if test_data is not None:
        cross_ds = scan_dataset(test_data, n_jobs=-1, progress=progress)
        cross = pd.DataFrame([{"path": r.path, "label": r.label, "sha256": r.sha256} for r in cross_ds.used])
        if cross.empty:
            raise DataError(f"{test_data}: no usable images for cross-dataset evaluation")
    run_info = {
        "crackbench_version": __version__,
        "command": {"data": str(data) if data else None, "manifest": str(manifest) if manifest else None,
                    "models": models, "test_data": str(test_data) if test_data else None, "seed": seed,
                    "epochs": epochs, "cnn_size": cnn_size, "scan_data": str(scan_data) if scan_data else None,
                    "scan_tile": scan_tile},
        "dataset": {**source, "manifest": "manifest.csv", "manifest_sha256": manifest_sha256(frame),
                    "dataset_sha256": _dataset_hash(frame), "n_images": len(frame),
                    "group_by": group_by, "near_distance": near_distance,
                    "leaks": duplicate_leaks(frame, DEFAULT_NEAR_DISTANCE if near_distance is None else near_distance),
                    "splits": {s: {lab: int(n) for lab, n in g["label"].value_counts().sort_index().items()}
                               for s, g in frame.groupby("split")}},
        "test_data": None if cross is None else {
            "path": str(Path(test_data).resolve()), "n_images": len(cross), "dataset_sha256": _dataset_hash(cross),
            "labels": {lab: int(n) for lab, n in cross["label"].value_counts().sort_index().items()},
            "not_used": len(cross_ds.records) - len(cross)},
    }
    scan = _prepare_scan_data(run_dir, scan_data, data is None and manifest is None, seed, scan_tile, progress)
    if scan is not None:
        run_info["scan_data"] = {k: v for k, v in scan.items() if k != "photos"}
    phases = {"decode_s": _decode_pass(list(frame["path"]), n_jobs)}
    test_data_sha256 = (run_info["test_data"] or {}).get("dataset_sha256")
    for i, kind in enumerate(kinds, 1):
        name = kind.name
        stamp = _stamp(kind, options, test_data_sha256)
        done, why = _finished(run_dir / "models" / name / "result.json", stamp)
        if done:
            _log(f"[{i}/{len(kinds)}] {name}: finished in an earlier run, skipped (--force redoes it)")
        else:
            if why:
                _log(f"[{i}/{len(kinds)}] {name}: {why}")
            _log(f"[{i}/{len(kinds)}] {name}: training")
            result = _run_model(kind, run_dir, frame, manifest_path, cross, options, stamp)
            acc = result["test"]["metrics"]["accuracy"]
            _log(f"[{i}/{len(kinds)}] {name}: test accuracy {acc['value']:.4f} "
                 f"[{acc['ci_low']:.4f}, {acc['ci_high']:.4f}], latency p50 {result['latency']['p50_ms']:.2f} ms")
        if scan is not None:
            _scan_model(run_dir, name, scan, progress)
    run_info["environment"] = _environment()  # after training: records TensorFlow if a CNN ran
    run_info["phases"] = phases
    run_info["wall_s_this_invocation"] = time.perf_counter() - wall
    write_json(run_dir / "run.json", run_info)
    return collect_results(run_dir)


def mistakes(test: pd.DataFrame, threshold: float, listed: int) -> dict:
    """How many rows of ``test`` (columns path, label, proba, right) are wrong, and the ``listed``
    most confident of them (farthest from the threshold; ties by path)."""
    wrong = test[~test["right"]]
    wrong = wrong.assign(conf=(wrong["proba"] - threshold).abs()).sort_values(["conf", "path"],
                                                                             ascending=[False, True])
    return {"n": len(wrong), "most_confident": [{"path": r.path, "label": r.label, "proba": float(r.proba)}
                                                for r in wrong.head(listed).itertuples()]}


def _roc_points(y: np.ndarray, proba: np.ndarray) -> dict | None:
    if not 0 < y.sum() < len(y):
        return None
    fpr, tpr, _ = roc_curve(y, proba)
    return {"fpr": np.round(fpr, 5).tolist(), "tpr": np.round(tpr, 5).tolist()}


def collect_results(run_dir: str | os.PathLike) -> dict:
    """Compute everything the reports show from ``run.json``, each ``models/*/result.json`` and
    ``predictions.csv`` (McNemar tests, ROC points, the most confident mistakes, where the time
    went), and write it to ``results.json``; returns it."""
    run_dir = Path(run_dir)
    if not (run_dir / "run.json").is_file():
        raise DataError(f"{run_dir}: not a benchmark run folder (no run.json)")
    run = json.loads((run_dir / "run.json").read_text())
    order = run["command"]["models"]
    found = {}
    for p in sorted(run_dir.glob("models/*/result.json")):
        try:
            found[p.parent.name] = json.loads(p.read_text())
        except ValueError as exc:
            _log(f"{p} cannot be read ({exc}); left out of the report")
    models = [found[n] for n in order if n in found] + [found[n] for n in sorted(found) if n not in order]
    threshold = PROTOCOL["threshold"]
    predictions = {m["name"]: pd.read_csv(run_dir / "models" / m["name"] / "predictions.csv") for m in models}
    correct = {}
    for m in models:
        pred = predictions[m["name"]]
        pred = pred.assign(y=(pred["label"] == m["classes"][1]).astype(int))
        pred = pred.assign(right=(pred["proba"] >= threshold) == (pred["y"] == 1))
        m["roc"] = {part: _roc_points(g["y"].to_numpy(), g["proba"].to_numpy()) for part, g in pred.groupby("set")}
        test = pred[pred["set"] == "test"]
        correct[m["name"]] = test.set_index("path")["right"]
        m["mistakes"] = mistakes(test, threshold, PROTOCOL["mistakes_listed"])
        curves = run_dir / "models" / m["name"] / "training_curves.png"
        m["training_curves"] = str(curves.relative_to(run_dir)) if curves.is_file() else None
    tests_mcnemar = []
    for a, b in itertools.combinations([m["name"] for m in models], 2):
        common = correct[a].index.intersection(correct[b].index)
        tests_mcnemar.append({"a": a, "b": b, "n": len(common),
                              **mcnemar(correct[a].loc[common], correct[b].loc[common])})
    phases = {
        "decode_s": run.get("phases", {}).get("decode_s", float("nan")),
        "features_s": sum(m["timings"].get("features_s", 0.0) for m in models if m["kind"] == "classical"),
        "fit_s": sum(m["timings"].get("train_s", 0.0) for m in models if m["kind"] == "classical"),
        "cnn_epochs_s": sum(m["timings"].get("train_s", 0.0) for m in models if m["kind"] == "cnn"),
        "evaluation_s": sum(m["timings"].get("evaluate_s", 0.0) for m in models),
    }
    results = {"schema": "crackbench-results/2", "protocol": PROTOCOL, "run": run, "models": models,
               "mcnemar": tests_mcnemar, "phases": phases}
    write_json(run_dir / "results.json", results)
    return results

