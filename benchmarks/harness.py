"""Train and evaluate every model on one manifest; write results a run at a time, resumably.

A run folder holds::

    manifest.csv, manifest.skipped.csv   the split every model shares (written once)
    synthetic/                           the generated default dataset, when no --data is given
    feature-cache/                       features shared by the classical models of this run
    models/<name>/model.{skops,keras}    each trained model ...
    models/<name>/result.json            ... and its results, written atomically when it finishes
    models/<name>/predictions.csv        per-image test (and cross-dataset) probabilities
    models/cnn/                          + TensorBoard logs, history.csv, training_curves.png
    results.json, results.csv, report.md, report.html, figures/

A model whose ``result.json`` exists is skipped when the same command runs again (``force``
redoes it), so an interrupted run loses nothing that finished. It is redone instead when its
stamp differs: another crackbench version, another ``--test-data``, or (CNN) other epochs or
input size. The split itself is checked byte for byte.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

from crackbench import __version__
from crackbench.dataset import DataError, scan_dataset
from crackbench.manifest import read_manifest, split_dataset, write_manifest
from crackbench.model import ImageModel, binary_classes, manifest_sha256
from crackbench.pipelines import PIPELINES

from .metrics import evaluate

__all__ = ["load_any_model", "run_benchmark", "time_calls", "write_json_atomic"]

N_LATENCY = 200
N_WARMUP = 20


def write_json_atomic(path: Path, obj) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=float))
    os.replace(tmp, path)


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
    """File -> label, decode included, one image at a time: p50/p95 over N_LATENCY images after
    N_WARMUP warm-up calls."""
    sample = (paths * (N_LATENCY // max(len(paths), 1) + 1))[:N_LATENCY]
    return time_calls({"predict": lambda p: model.predict([p])}, sample, N_WARMUP)["predict"]


def _predict_batched(model: ImageModel, paths: list[str], batch: int = 256) -> tuple[np.ndarray, float]:
    """Positive-class probabilities for ``paths`` (decode included) and throughput in images/s."""
    start = time.perf_counter()
    proba = np.concatenate([model.predict_proba(paths[i:i + batch])[:, 1] for i in range(0, len(paths), batch)])
    return proba, len(paths) / (time.perf_counter() - start)


def _train(name: str, manifest_path: Path, model_dir: Path, *, seed: int, n_jobs: int, cache_dir: Path,
           epochs: int, cnn_size: int | None, progress: bool) -> Path:
    """Train model ``name`` and save it in ``model_dir``; returns the model file."""
    if name == "cnn":
        from crackbench.cnn import save_model, train_cnn

        model = train_cnn(manifest_path, model_dir, seed=seed, epochs=epochs, image_size=cnn_size,
                          progress=progress)
        return save_model(model, model_dir / "model.keras")
    else:
        from crackbench.pipelines import save_model, train_classical

        model = train_classical(name, manifest_path, seed=seed, n_jobs=n_jobs, cache_dir=cache_dir,
                                progress=progress)
        return save_model(model, model_dir / "model.skops")


def load_any_model(path: str | os.PathLike) -> ImageModel:
    """A trained model from a .skops (classical) or .keras (CNN) file, each loaded safely."""
    path = Path(path)
    if path.suffix == ".keras":
        from crackbench.cnn import load_model
    elif path.suffix == ".skops":
        from crackbench.pipelines import load_model
    else:
        raise ValueError(f"{path}: expected a .skops (classical) or .keras (CNN) model file")
    return load_model(path)


def _run_model(name: str, run_dir: Path, manifest: pd.DataFrame, manifest_path: Path,
               cross: pd.DataFrame | None, *, seed: int, n_jobs: int, epochs: int, cnn_size: int | None,
               progress: bool, stamp: dict) -> dict:
    model_dir = run_dir / "models" / name
    model_dir.mkdir(parents=True, exist_ok=True)
    with PeakMemory() as mem:
        start = time.perf_counter()
        path = _train(name, manifest_path, model_dir, seed=seed, n_jobs=n_jobs, cache_dir=run_dir / "feature-cache",
                      epochs=epochs, cnn_size=cnn_size, progress=progress)
        train_wall = time.perf_counter() - start
    model = load_any_model(path)  # evaluate what a user would load, not the in-memory object
    classes = model.classes_
    start = time.perf_counter()
    test = manifest[manifest["split"] == "test"]
    test_paths = list(test["path"])
    y_test = (test["label"] == classes[1]).to_numpy(int)
    proba, throughput = _predict_batched(model, test_paths)
    result = {
        "name": name,
        "stamp": stamp,
        "kind": model.metadata["kind"],
        "description": model.metadata["description"],
        "model_file": str(path.relative_to(run_dir)),
        "model_bytes": path.stat().st_size,
        "classes": classes,
        "best_params": model.metadata.get("best_params", model.metadata.get("params")),
        "val_metrics": model.metadata["val_metrics"],
        "timings": {**model.metadata["timings"], "train_wall_s": train_wall},
        "peak_rss_mib": mem.peak,
        "test": evaluate(y_test, proba, seed=seed),
        "throughput_img_s": throughput,
        "latency": _latency(model, test_paths),
    }
    if name == "cnn":
        result["epochs_run"] = model.metadata["epochs_run"]
        result["best_epoch"] = model.metadata["best_epoch"]
    rows = pd.DataFrame({"set": "test", "path": test_paths, "label": test["label"].to_numpy(),
                         "proba": proba})
    if cross is not None:
        y_cross = (cross["label"] == classes[1]).to_numpy(int)
        cross_proba, _ = _predict_batched(model, list(cross["path"]))
        result["cross"] = evaluate(y_cross, cross_proba, seed=seed)
        rows = pd.concat([rows, pd.DataFrame({"set": "cross", "path": cross["path"].to_numpy(),
                                              "label": cross["label"].to_numpy(), "proba": cross_proba})])
    result["timings"]["evaluate_s"] = time.perf_counter() - start
    rows.to_csv(model_dir / "predictions.csv.tmp", index=False)
    os.replace(model_dir / "predictions.csv.tmp", model_dir / "predictions.csv")
    write_json_atomic(model_dir / "result.json", result)  # last: marks the model finished
    return result


def _prepare_manifest(run_dir: Path, data, manifest, seed: int, n_synthetic: int, group_by: str | None,
                      progress: bool) -> tuple[Path, dict]:
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
        ds = scan_dataset(data, n_jobs=-1, progress=progress)
        fresh = write_manifest(split_dataset(ds, seed=seed, group_by=group_by), target.with_name("manifest.new.csv"))
        source["not_used"] = ds.write_not_used(run_dir / "manifest.skipped.csv")
    if target.exists() and target.read_bytes() != fresh.read_bytes():
        fresh.unlink()
        raise DataError(f"{target} differs from the split this command makes now (the data or the seed "
                        f"changed since this run started): use another --out, or --force to start over")
    os.replace(fresh, target)
    return target, source


def _stamp(name: str, run_info: dict) -> dict:
    """What a finished model's results depend on besides the split (which is checked byte for byte)."""
    stamp = {"crackbench_version": __version__,
             "test_data_sha256": (run_info["test_data"] or {}).get("dataset_sha256")}
    if name == "cnn":
        stamp |= {"epochs": run_info["command"]["epochs"], "cnn_size": run_info["command"]["cnn_size"]}
    return stamp


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
    progress: bool = True,
) -> dict:
    """Run the benchmark into ``out``; returns the collected results (also written to disk).

    Parameters mirror ``crackbench benchmark``: with neither ``data`` nor ``manifest`` the
    synthetic default dataset (``n_synthetic`` images) is generated into the run folder.
    """
    from .report import collect_results, write_reports

    if data is not None and manifest is not None:
        raise ValueError("give --data or --manifest, not both")
    run_dir = Path(out)
    run_dir.mkdir(parents=True, exist_ok=True)
    if force:
        for f in run_dir.glob("models/*/result.json"):
            f.unlink()
        (run_dir / "manifest.csv").unlink(missing_ok=True)
    models = models or [*PIPELINES, "cnn"]
    unknown = sorted(set(models) - set(PIPELINES) - {"cnn"})
    if unknown:
        raise ValueError(f"unknown model(s) {unknown}; see `crackbench models`")
    wall = time.perf_counter()
    manifest_path, source = _prepare_manifest(run_dir, data, manifest, seed, n_synthetic, group_by, progress)
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
                    "epochs": epochs, "cnn_size": cnn_size},
        "dataset": {**source, "manifest": "manifest.csv", "manifest_sha256": manifest_sha256(frame),
                    "dataset_sha256": _dataset_hash(frame), "n_images": len(frame),
                    "splits": {s: {lab: int(n) for lab, n in g["label"].value_counts().sort_index().items()}
                               for s, g in frame.groupby("split")}},
        "test_data": None if cross is None else {
            "path": str(Path(test_data).resolve()), "n_images": len(cross), "dataset_sha256": _dataset_hash(cross),
            "labels": {lab: int(n) for lab, n in cross["label"].value_counts().sort_index().items()},
            "not_used": len(cross_ds.records) - len(cross)},
    }
    phases = {"decode_s": _decode_pass(list(frame["path"]), n_jobs)}
    for i, name in enumerate(models, 1):
        done = run_dir / "models" / name / "result.json"
        stamp = _stamp(name, run_info)
        if done.exists():
            before = json.loads(done.read_text()).get("stamp")
            if before == stamp:
                _log(f"[{i}/{len(models)}] {name}: finished in an earlier run, skipped (--force redoes it)")
                continue
            _log(f"[{i}/{len(models)}] {name}: the earlier result was made with {before}, this command "
                 f"needs {stamp}: redoing it")
        _log(f"[{i}/{len(models)}] {name}: training")
        result = _run_model(name, run_dir, frame, manifest_path, cross, seed=seed, n_jobs=n_jobs, epochs=epochs,
                            cnn_size=cnn_size, progress=progress, stamp=stamp)
        acc = result["test"]["metrics"]["accuracy"]
        _log(f"[{i}/{len(models)}] {name}: test accuracy {acc['value']:.4f} "
             f"[{acc['ci_low']:.4f}, {acc['ci_high']:.4f}], latency p50 {result['latency']['p50_ms']:.2f} ms")
    run_info["environment"] = _environment()  # after training: records TensorFlow if a CNN ran
    run_info["phases"] = phases
    run_info["wall_s_this_invocation"] = time.perf_counter() - wall
    write_json_atomic(run_dir / "run.json", run_info)
    results = collect_results(run_dir)
    write_reports(run_dir, results)
    return results

