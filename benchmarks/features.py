"""Feature-extraction speed: ours beside the scikit-image reference, on the same images, one run.

    python -m crackbench.benchmarks.features --data ../shared/data/concrete-crack-sample

Kernel rows are single-threaded (one image at a time, both sides), timed as the median of
``--repeat`` passes after a warm-up pass, and reported as images/s and the ratio ours/reference.
The end-to-end rows time :func:`crackbench.features.extract` over files (read + decode +
features, all cores through joblib, no cache) beside the same machinery with a no-op extractor:
decode-only throughput, the floor nothing can beat. Without ``--data`` it runs on
freshly generated synthetic images and says so.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from skimage.feature import hog as sk_hog
from skimage.feature import local_binary_pattern as sk_lbp

from crackbench.features import (
    EdgeFeatures,
    HOGFeatures,
    LBPFeatures,
    combined_features,
    extract,
    hog,
    local_binary_pattern,
)
from crackbench.features.batch import DecodeOnly
from crackbench.imageio import IMAGE_EXTENSIONS, read_image
from crackbench.synthetic import make_synthetic_dataset


def _median_time(fn, images, repeat: int) -> float:
    fn(images[: max(1, len(images) // 10)])  # warm-up: JIT compilation, caches, allocator
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn(images)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _each(kernel):
    return lambda images: [kernel(im) for im in images]


def _sk_lbp_hist(images, radii=(1, 2, 3), P=8):
    """The reference equivalent of LBPFeatures(): scikit-image codes + the same histograms."""
    return [np.concatenate([np.bincount(sk_lbp(im, P, r, "uniform").astype(np.int64).ravel(),
                                        minlength=P + 2) / im.size for r in radii]) for im in images]


KERNELS = [
    # (asv-style name, what, ours, reference)
    ("time_hog_skimage_defaults", "hog 227x227, 8x8 cells, 3x3 blocks",
     _each(hog), _each(sk_hog)),
    ("time_hog_16px_cells", "hog 227x227, 16x16 cells, 2x2 blocks",
     _each(lambda im: hog(im, 9, (16, 16), (2, 2))), _each(lambda im: sk_hog(im, 9, (16, 16), (2, 2)))),
    ("time_lbp_uniform_p8_r1", "local_binary_pattern P=8 R=1 uniform",
     _each(lambda im: local_binary_pattern(im, 8, 1, "uniform")),
     _each(lambda im: sk_lbp(im, 8, 1, "uniform"))),
    ("time_lbp_uniform_p16_r2", "local_binary_pattern P=16 R=2 uniform",
     _each(lambda im: local_binary_pattern(im, 16, 2, "uniform")),
     _each(lambda im: sk_lbp(im, 16, 2, "uniform"))),
    ("time_lbp_uniform_p24_r3", "local_binary_pattern P=24 R=3 uniform",
     _each(lambda im: local_binary_pattern(im, 24, 3, "uniform")),
     _each(lambda im: sk_lbp(im, 24, 3, "uniform"))),
    ("time_lbp_features_default", "LBPFeatures() histograms (P=8, R=1,2,3)",
     lambda ims: LBPFeatures().transform(ims), _sk_lbp_hist),
]


def _image_paths(data: Path | None, n: int) -> tuple[list[Path], str]:
    if data is not None:
        if not data.is_dir():
            raise FileNotFoundError(f"{data}: no such image folder")
        paths = sorted(p for p in data.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
        step = max(1, len(paths) // n)
        return paths[::step][:n], f"{data} ({len(paths)} images, every {step}th used)"
    tmp = Path(tempfile.mkdtemp(prefix="crackbench-bench-"))
    make_synthetic_dataset(tmp, n, seed=0, progress=False)
    return sorted(tmp.rglob("*.jpg")), f"{n} synthetic images generated in {tmp}"


def run(data: Path | None, n: int, repeat: int, n_jobs: int) -> dict:
    paths, source = _image_paths(data, n)
    images = [read_image(p, mode="gray") for p in paths]
    rows = []
    for name, what, ours, ref in KERNELS:
        kernel_images = images[: max(50, len(images) // 4)]  # the reference is slow: a quarter
        t_ours = _median_time(ours, kernel_images, repeat)
        t_ref = _median_time(ref, kernel_images, repeat)
        rows.append({"benchmark": name, "what": what, "images": len(kernel_images),
                     "ours_img_s": len(kernel_images) / t_ours,
                     "reference_img_s": len(kernel_images) / t_ref, "ratio": t_ref / t_ours})
        print(f"  {name}: x{t_ref / t_ours:.1f}", file=sys.stderr)

    def end_to_end(extractor):
        return _median_time(lambda ps: extract(ps, extractor, n_jobs=n_jobs, progress=False), paths, repeat)

    throughput = []
    for name, extractor in [("time_decode_only", DecodeOnly()), ("time_extract_hog", HOGFeatures()),
                            ("time_extract_lbp", LBPFeatures()), ("time_extract_edges", EdgeFeatures()),
                            ("time_extract_combined", combined_features())]:
        t = end_to_end(extractor)
        throughput.append({"benchmark": name, "images": len(paths), "img_s": len(paths) / t})
        print(f"  {name}: {len(paths) / t:.0f} img/s", file=sys.stderr)
    return {
        "source": source,
        "environment": {"python": platform.python_version(), "machine": platform.machine(),
                        "cpus": os.cpu_count(), "n_jobs": n_jobs, "repeat": repeat},
        "kernels": rows,
        "end_to_end": throughput,
    }


def print_report(result: dict) -> None:
    env = result["environment"]
    print(f"data: {result['source']}")
    print(f"{env['cpus']} CPUs, Python {env['python']}, median of {env['repeat']} passes after warm-up\n")
    print("| benchmark | what | images | ours (img/s) | scikit-image (img/s) | speed-up |")
    print("|---|---|---:|---:|---:|---:|")
    for r in result["kernels"]:
        print(f"| {r['benchmark']} | {r['what']} | {r['images']} | {r['ours_img_s']:,.0f} | "
              f"{r['reference_img_s']:,.0f} | {r['ratio']:.1f}x |")
    print(f"\nEnd to end: read + decode + features, n_jobs={env['n_jobs']}, no cache\n")
    print("| benchmark | images | img/s |")
    print("|---|---:|---:|")
    for r in result["end_to_end"]:
        print(f"| {r['benchmark']} | {r['images']} | {r['img_s']:,.0f} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m crackbench.benchmarks.features", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=None,
                        help="image folder, e.g. ../shared/data/concrete-crack-sample (default: generated "
                        "synthetic images)")
    parser.add_argument("--n", type=int, default=2000, help="images for the end-to-end rows (default 2000)")
    parser.add_argument("--repeat", type=int, default=3, help="timed passes, median reported (default 3)")
    parser.add_argument("--jobs", type=int, default=-1, help="joblib workers end to end (default all cores)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    return run_and_emit(lambda: run(args.data, args.n, args.repeat, args.jobs), print_report, args.json)


def run_and_emit(compute, report, json_path: Path | None) -> int:
    """The speed scripts' main: compute, print the table (and write JSON), or print a missing
    file or folder as one line and return 1."""
    try:
        result = compute()
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return emit(result, report, json_path)


def emit(result: dict, report, json_path: Path | None) -> int:
    """Print ``result``'s table with ``report`` and, with ``json_path``, also write it as JSON."""
    report(result)
    if json_path:
        json_path.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
