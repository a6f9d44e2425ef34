"""Whole-photo scanning speed: ``scan_image`` beside the naive per-tile path, on the same photo, one run.

    python -m crackbench.benchmarks.scan RUN_DIR_OR_MODEL... [--photo PHOTO] [--repeat 3]

For each model, on one photo (default: a generated 4032x3024 concrete-like photo with drawn cracks,
written as a JPEG), both paths start from the file, decode included, with the default tile (227)
and stride (113):

- ``time_scan``: ``scan_image(model, path)``, one decode, tiles as zero-copy views, batches;
- ``time_naive``: decode, cut every tile as a copy, ``model.predict_proba([tile])`` once per tile.

Each row reports the median of ``--repeat`` runs (the naive path runs once), seconds per megapixel,
and the ratio naive / scan; both paths give the same probabilities (checked). With ``--peak-mp``, a
child process per model scans a generated photo of that many megapixels (written once, beforehand)
and reports its peak resident memory above what it held with the model loaded and warmed up.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from crackbench.imageio import read_image, to_gray
from crackbench.registry import load_model
from crackbench.scan import scan_image
from crackbench.synthetic import synthetic_photo

from .features import run_and_emit
from .latency import _model_files

__all__ = ["main", "run"]


def _naive(model, path: str, tile: int = 227, stride: int = 113) -> np.ndarray:
    from crackbench.scan import tile_origins

    image = read_image(path, mode=model.input_mode)
    ys, xs = tile_origins(image.shape[0], tile, stride), tile_origins(image.shape[1], tile, stride)
    return np.array([model.predict_proba([image[y:y + tile, x:x + tile].copy()])[0, 1] for y in ys for x in xs])


def _status_kib(key: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key + ":"))


def _peak(model_file: str, photo: str) -> dict:
    """Run in a child process: peak RSS while scanning ``photo`` above the RSS with the model loaded
    and warmed up. The kernel's high-water mark (VmHWM) is reset just before the scan (Linux
    ``clear_refs``): ``ru_maxrss`` would carry the parent's peak across the fork."""
    model = load_model(model_file)
    scan_image(model, synthetic_photo(0, 300, 300)[0])  # warm-up: JIT, thread pools
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    current = _status_kib("VmRSS")
    result = scan_image(model, photo)
    return {"width": result.width, "height": result.height, "rss_before_mib": current / 1024,
            "peak_above_mib": (_status_kib("VmHWM") - current) / 1024}


def _write_photo(megapixels: float) -> Path:
    width = round((megapixels * 1e6 * 4 / 3) ** 0.5)
    photo, _ = synthetic_photo(0, width, round(width * 3 / 4))
    path = Path(tempfile.mkdtemp(prefix="crackbench-scan-")) / f"photo-{photo.shape[1]}x{photo.shape[0]}.jpg"
    cv2.imwrite(str(path), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])
    return path


def run(targets: list[Path], photo: Path | None, repeat: int, peak_mp: float | None) -> dict:
    if photo is None:
        photo = Path(tempfile.mkdtemp(prefix="crackbench-scan-")) / "photo-4032x3024.jpg"
        cv2.imwrite(str(photo), cv2.cvtColor(synthetic_photo(0, 4032, 3024)[0], cv2.COLOR_RGB2BGR),
                    [cv2.IMWRITE_JPEG_QUALITY, 92])
        source = f"generated 4032x3024 photo (crackbench.synthetic.synthetic_photo) ({photo})"
    else:
        source = str(photo)
    h, w = read_image(photo, mode="gray").shape
    mp = w * h / 1e6
    rows, big = [], None
    for file in _model_files(targets):
        model = load_model(file)
        name = model.metadata.get("name", file.stem)
        scan_image(model, to_gray(read_image(photo))[:454, :454] if model.input_mode == "gray"
                   else read_image(photo)[:454, :454])  # warm-up
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            result = scan_image(model, photo)
            times.append(time.perf_counter() - start)
        start = time.perf_counter()
        naive = _naive(model, str(photo))
        naive_s = time.perf_counter() - start
        diff = float(np.abs(naive - result.probabilities.ravel()).max())
        scan_s = statistics.median(times)
        row = {"model": name, "tiles": int(result.probabilities.size), "scan_s": scan_s, "naive_s": naive_s,
               "scan_s_per_mp": scan_s / mp, "ratio": naive_s / scan_s, "max_abs_difference": diff}
        if peak_mp:
            big = big or _write_photo(peak_mp)
            child = subprocess.run([sys.executable, "-m", "crackbench.benchmarks.scan", "--peak-child", str(file),
                                    "--photo", str(big)], capture_output=True, text=True)
            row["peak"] = json.loads(child.stdout.strip().splitlines()[-1]) if child.returncode == 0 else {
                "error": child.stderr[-500:]}
        rows.append(row)
        print(f"  {name}: scan {scan_s:.2f} s, naive {naive_s:.2f} s", file=sys.stderr)
    return {"source": source, "width": w, "height": h, "repeat": repeat, "models": rows}


def print_report(result: dict) -> None:
    print(f"photo: {result['source']}, {result['width']}x{result['height']} "
          f"({result['width'] * result['height'] / 1e6:.1f} MP); tile 227, stride 113; decode included; "
          f"scan: median of {result['repeat']} runs\n")
    print("| model | tiles | time_scan (s) | s / MP | time_naive (s) | speed-up | max difference |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in result["models"]:
        print(f"| {r['model']} | {r['tiles']} | {r['scan_s']:.2f} | {r['scan_s_per_mp']:.3f} | {r['naive_s']:.2f} "
              f"| {r['ratio']:.1f}x | {r['max_abs_difference']:.1e} |")
    peaks = [r for r in result["models"] if "peak" in r]
    if peaks:
        print("\n| model | photo | peak memory above the loaded model (MiB) |")
        print("|---|---|---:|")
        for r in peaks:
            p = r["peak"]
            cell = f"{p['peak_above_mib']:.0f}" if "peak_above_mib" in p else f"error: {p.get('error', '')[:80]}"
            print(f"| {r['model']} | {p.get('width', '?')}x{p.get('height', '?')} | {cell} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m crackbench.benchmarks.scan", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("targets", type=Path, nargs="*", help="model files or benchmark run folders")
    parser.add_argument("--photo", type=Path, help="a photo to scan (default: a generated 4032x3024 one)")
    parser.add_argument("--repeat", type=int, default=3, help="scan runs per model, median reported (default 3)")
    parser.add_argument("--peak-mp", type=float, help="also measure peak memory on a generated photo of this size")
    parser.add_argument("--peak-child", help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    if args.peak_child:
        print(json.dumps(_peak(args.peak_child, str(args.photo))))
        return 0
    if not args.targets:
        parser.error("give model files or benchmark run folders")
    return run_and_emit(lambda: run(args.targets, args.photo, args.repeat, args.peak_mp), print_report, args.json)


if __name__ == "__main__":
    sys.exit(main())
