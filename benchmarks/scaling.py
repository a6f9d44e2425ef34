"""Throughput on a Dask cluster beside the local path, same files, one run.

    python -m crackbench.benchmarks.scaling [DATA_DIR] [--n 4000] [--photos 6] [--chunks 32,128,512]

On ``--n`` images of DATA_DIR (default: a generated dataset), read from their paths by whoever does
the work, three jobs run:

- ``time_extract``: ``extract(paths, make_feature_set("combined"))``, no feature cache;
- ``time_predict``: ``predict_files`` with the built-in model;
- ``time_scan``: ``scan_files`` with the built-in model on ``--photos`` generated 4032x3024 photos.

each through the local path (joblib workers for extraction, one thread per core for prediction
and scanning) and through a ``distributed.LocalCluster`` of 1 and of 2 worker
processes (one thread each). Every configuration first runs a short untimed warm-up; cluster
start-up is timed apart. A last table times extraction on the 2-worker cluster at several
``--chunks`` sizes (images per task), the measurement behind ``crackbench.cluster.CHUNK_IMAGES``.
The outputs of every path are checked identical to the local ones.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np

from crackbench.features import extract, make_feature_set
from crackbench.model import iter_image_files, predict_files
from crackbench.registry import load_model, resolve_model
from crackbench.scan import scan_files

from .features import emit

__all__ = ["main", "run"]


def _jobs(paths: list[str], photos: list[str], model, scratch: Path) -> dict:
    """The three timed jobs; each returns (seconds, its output for the identity check)."""
    extractor = make_feature_set("combined")

    def time_extract():
        start = time.perf_counter()
        out = extract(paths, extractor, progress=False)
        return time.perf_counter() - start, out

    def time_predict():
        start = time.perf_counter()
        out = [(r.label, r.probability, r.error) for r in predict_files(model, paths)]
        return time.perf_counter() - start, out

    def time_scan():
        start = time.perf_counter()
        payload = scan_files(model, photos, scratch / f"scan-{time.monotonic_ns()}", progress=False)
        return time.perf_counter() - start, [(r["tiles"], r["max_probability"]) for r in payload["photos"]]

    return {"extract": (time_extract, len(paths)), "predict": (time_predict, len(paths)),
            "scan": (time_scan, len(photos))}


def _warm_up(paths: list[str], photos: list[str], model, scratch: Path) -> None:
    extract(paths[:256], make_feature_set("combined"), progress=False)
    list(predict_files(model, paths[:256]))
    scan_files(model, photos[:1], scratch / "warm", progress=False)


def _same(a, b) -> bool:
    if isinstance(a, np.ndarray):
        return np.array_equal(a, b)
    return a == b


def run(data: Path | None, n: int, n_photos: int, chunk_sizes: list[int]) -> dict:
    import cv2

    from crackbench import cluster
    from crackbench.synthetic import make_synthetic_dataset, synthetic_photo

    scratch = Path(tempfile.mkdtemp(prefix="crackbench-scaling-"))
    if data is None:
        data = make_synthetic_dataset(scratch / "patches", n=n, seed=0, progress=False)
    elif not data.is_dir():
        raise FileNotFoundError(f"{data}: no such folder")
    paths = sorted(iter_image_files([data]))[:n]
    photos = []
    for i in range(n_photos):
        rgb, _ = synthetic_photo(seed=i, width=4032, height=3024)
        photos.append(str(scratch / "photos" / f"photo-{i}.jpg"))
        Path(photos[-1]).parent.mkdir(exist_ok=True)
        cv2.imwrite(photos[-1], cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    model = load_model(resolve_model(None))
    jobs = _jobs(paths, photos, model, scratch)
    rows, reference = [], {}
    configs = [("local", None), ("cluster, 1 worker", "local:1"), ("cluster, 2 workers", "local:2")]
    for label, spec in configs:
        print(f"  {label} ...", file=sys.stderr)
        start = time.perf_counter()
        context = cluster.connect(spec) if spec else nullcontext()
        with context:
            startup = time.perf_counter() - start
            _warm_up(paths, photos, model, scratch)
            for job, (fn, count) in jobs.items():
                seconds, out = fn()
                if spec is None:
                    reference[job] = out
                rows.append({"config": label, "job": job, "items": count, "seconds": seconds,
                             "per_second": count / seconds, "startup_s": startup if spec else 0.0,
                             "identical": True if spec is None else _same(out, reference[job])})
            if spec == "local:2":
                chunks = []
                for size in chunk_sizes:
                    start = time.perf_counter()
                    out = extract(paths, make_feature_set("combined"), progress=False, chunk_size=size)
                    seconds = time.perf_counter() - start
                    chunks.append({"chunk": size, "seconds": seconds, "per_second": len(paths) / seconds,
                                   "identical": _same(out, reference["extract"])})
    import joblib

    return {"data": str(data), "images": len(paths), "photos": len(photos), "photo_size": "4032x3024",
            "cores": joblib.cpu_count(), "default_chunk": cluster.CHUNK_IMAGES, "rows": rows, "chunks": chunks}


def print_report(result: dict) -> None:
    print(f"{result['images']} images of {result['data']}, {result['photos']} generated {result['photo_size']} "
          f"photos; {result['cores']} cores; built-in model for predict and scan; combined features for "
          f"extract\n")
    by = {(r["config"], r["job"]): r for r in result["rows"]}
    print("| job | local (/s) | cluster, 1 worker (/s) | cluster, 2 workers (/s) | 2 workers / local "
          "| 2 workers / 1 worker | identical |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for job, unit in (("extract", "images"), ("predict", "images"), ("scan", "photos")):
        loc, one, two = (by[(c, job)] for c in ("local", "cluster, 1 worker", "cluster, 2 workers"))
        print(f"| {job} ({unit}) | {loc['per_second']:.1f} | {one['per_second']:.1f} | {two['per_second']:.1f} "
              f"| {two['per_second'] / loc['per_second']:.2f} | {two['per_second'] / one['per_second']:.2f} "
              f"| {'yes' if one['identical'] and two['identical'] else 'NO'} |")
    starts = [r["startup_s"] for r in result["rows"] if r["startup_s"]]
    print(f"\ncluster start-up (LocalCluster + workers ready): {min(starts):.1f}-{max(starts):.1f} s, not included")
    print("\n| images per task (2 workers, extract) | images/s | identical |")
    print("|---:|---:|---|")
    for c in result["chunks"]:
        mark = " (default)" if c["chunk"] == result["default_chunk"] else ""
        print(f"| {c['chunk']}{mark} | {c['per_second']:.1f} | {'yes' if c['identical'] else 'NO'} |")


def main(argv: list[str] | None = None) -> int:
    from crackbench.cluster import require_dask
    from crackbench.errors import UsageError

    parser = argparse.ArgumentParser(prog="python -m crackbench.benchmarks.scaling", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path, nargs="?", help="image folder (default: a generated dataset)")
    parser.add_argument("--n", type=int, default=4000, help="images (default %(default)s)")
    parser.add_argument("--photos", type=int, default=6, help="generated 12 MP photos to scan (default %(default)s)")
    parser.add_argument("--chunks", default="32,128,512", help="images per task to compare (default %(default)s)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    try:
        require_dask("python -m crackbench.benchmarks.scaling")
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.data is not None and not args.data.is_dir():
        print(f"error: {args.data}: no such folder", file=sys.stderr)
        return 1
    result = run(args.data, args.n, args.photos, [int(c) for c in args.chunks.split(",")])
    return emit(result, print_report, args.json)


if __name__ == "__main__":
    sys.exit(main())
