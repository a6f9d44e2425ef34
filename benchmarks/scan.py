"""Whole-photo scanning speed: ``scan_image`` beside the naive per-tile path, on the same photo, one run.

    python -m crackbench.benchmarks.scan RUN_DIR_OR_MODEL... [--photo PHOTO] [--repeat 3]

For each model, on one photo (default: a generated 4032x3024 concrete-like photo with drawn cracks,
written as a JPEG), every path starts from the file, decode included, with the default tile (227)
and stride (113):

- ``time_scan``: ``scan_image(model, path)``: one decode, then the tiles as zero-copy views scored in
  batches, or, for a model that shares the work of overlapping tiles (the CNN, run fully
  convolutionally), the whole grid at once;
- ``time_naive``: decode, cut every tile as a copy, ``model.predict_proba([tile])`` once per tile
  (crackbench's per-image path, which already skips scikit-learn's per-call validation);
- ``decode``: the decode alone. ``naive / decode`` is the most any scan could gain over the naive
  path with decoding included;
- for a classical model, ``time_sklearn``: the same per-tile loop calling the scikit-learn
  ``Pipeline.predict_proba`` directly; for a model that shares work, ``time_unshared``:
  ``scan_image(..., shared=False)``, every tile cut and resized.

Each row reports the median of ``--repeat`` runs (decode and scans; the per-tile paths run once),
seconds per megapixel, the ratios, and the largest difference between the scan's probabilities
and the same tiles scored one at a time (the naive path's tiles; for a shared grid, its own tiles
cropped from the resampled photo). Each model is timed in a child process of its own, so no
model's thread pools run beside another's timings. With ``--peak-mp``, another child process per
model scans a generated photo of that many megapixels (written once, beforehand) and reports its
peak resident memory above what it held with the model loaded and warmed up.
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
from crackbench.scan import resample, scan_image, tile_origins
from crackbench.synthetic import synthetic_photo

from .features import run_and_emit
from .latency import _model_files

__all__ = ["main", "run"]


def _naive(model, path: str, tile: int = 227, stride: int = 113) -> np.ndarray:
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


def _alone(model, photo: Path, result) -> np.ndarray:
    """The scan's tiles scored one call each from the photo resampled as the scan resampled it."""
    image = resample(read_image(photo, mode=model.input_mode), result.scale)
    t = result.tile
    return np.array([model.predict_proba([image[y:y + t, x:x + t].copy()])[0, 1] for y in result.ys for x in result.xs])


def _median_time(fn, repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def _once(fn) -> tuple[float, object]:
    return _median_time(fn, 1)


def _measure(file: str, photo: Path, repeat: int) -> dict:
    """One model's row; run in a child process of its own, so no model's thread pools (BLAS,
    TensorFlow) are left running beside the next one's timings."""
    model = load_model(file)
    name = model.metadata.get("name", Path(file).stem)
    h, w = read_image(photo, mode="gray").shape
    scan_image(model, to_gray(read_image(photo))[:454, :454] if model.input_mode == "gray"
               else read_image(photo)[:454, :454])  # warm-up
    decode_s, _ = _median_time(lambda: read_image(photo, mode=model.input_mode), repeat)
    scan_s, result = _median_time(lambda: scan_image(model, photo), repeat)
    naive_s, naive = _once(lambda: _naive(model, str(photo)))
    shared = model.grid_geometry() is not None
    alone = _alone(model, photo, result) if shared else naive
    row = {"model": name, "tiles": int(result.probabilities.size), "scan_s": scan_s, "naive_s": naive_s,
           "decode_s": decode_s, "scan_s_per_mp": scan_s / (w * h / 1e6), "ratio": naive_s / scan_s,
           "ceiling": naive_s / decode_s,
           "grid": {"tile_px": result.tile * result.scale, "stride_px": result.stride * result.scale},
           "max_abs_difference": float(np.abs(alone - result.probabilities.ravel()).max())}
    if shared:
        row["unshared_s"], _ = _median_time(lambda: scan_image(model, photo, shared=False), repeat)
    elif hasattr(model, "pipeline"):
        image = read_image(photo, mode=model.input_mode)
        ys, xs = tile_origins(h, 227, 113), tile_origins(w, 227, 113)
        row["sklearn_s"], _ = _once(lambda: [model.pipeline.predict_proba(np.stack([image[y:y + 227, x:x + 227]]))
                                             for y in ys for x in xs])
        row["sklearn_s"] += decode_s  # the loop above reuses one decode
    return row


def _child(*args: str) -> dict:
    """Run this script with ``args`` in a child process and return the JSON it prints last."""
    child = subprocess.run([sys.executable, "-m", "crackbench.benchmarks.scan", *args], capture_output=True, text=True)
    if child.returncode != 0:
        return {"error": child.stderr[-500:]}
    return json.loads(child.stdout.strip().splitlines()[-1])


def run(targets: list[Path], photo: Path | None, repeat: int, peak_mp: float | None) -> dict:
    if photo is None:
        photo = Path(tempfile.mkdtemp(prefix="crackbench-scan-")) / "photo-4032x3024.jpg"
        cv2.imwrite(str(photo), cv2.cvtColor(synthetic_photo(0, 4032, 3024)[0], cv2.COLOR_RGB2BGR),
                    [cv2.IMWRITE_JPEG_QUALITY, 92])
        source = f"generated 4032x3024 photo (crackbench.synthetic.synthetic_photo) ({photo})"
    else:
        source = str(photo)
    h, w = read_image(photo, mode="gray").shape
    rows, big = [], None
    for file in _model_files(targets):
        row = _child("--time-child", str(file), "--photo", str(photo), "--repeat", str(repeat))
        if "error" in row:
            raise RuntimeError(f"timing {file} failed: {row['error']}")
        if peak_mp:
            big = big or _write_photo(peak_mp)
            row["peak"] = _child("--peak-child", str(file), "--photo", str(big))
        rows.append(row)
        print(f"  {row['model']}: scan {row['scan_s']:.2f} s, naive {row['naive_s']:.2f} s", file=sys.stderr)
    return {"source": source, "width": w, "height": h, "repeat": repeat, "models": rows}


def print_report(result: dict) -> None:
    print(f"photo: {result['source']}, {result['width']}x{result['height']} "
          f"({result['width'] * result['height'] / 1e6:.1f} MP); tile 227, stride 113; decode included; "
          f"scan and decode: median of {result['repeat']} runs\n")
    print("| model | tiles | time_scan (s) | s / MP | time_naive (s) | speed-up | decode (s) | naive / decode "
          "| max difference |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in result["models"]:
        print(f"| {r['model']} | {r['tiles']} | {r['scan_s']:.2f} | {r['scan_s_per_mp']:.3f} | {r['naive_s']:.2f} "
              f"| {r['ratio']:.1f}x | {r['decode_s']:.3f} | {r['ceiling']:.1f}x | {r['max_abs_difference']:.1e} |")
    print("\n| model | tile / stride (photo px) | time_sklearn (s) | time_sklearn / time_scan "
          "| time_unshared (s) | time_unshared / time_scan |")
    print("|---|---|---:|---:|---:|---:|")
    for r in result["models"]:
        sk = f"{r['sklearn_s']:.2f} | {r['sklearn_s'] / r['scan_s']:.1f}x" if "sklearn_s" in r else "- | -"
        un = f"{r['unshared_s']:.2f} | {r['unshared_s'] / r['scan_s']:.1f}x" if "unshared_s" in r else "- | -"
        print(f"| {r['model']} | {r['grid']['tile_px']:.4g} / {r['grid']['stride_px']:.4g} | {sk} | {un} |")
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
    parser.add_argument("--time-child", help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    if args.peak_child:
        print(json.dumps(_peak(args.peak_child, str(args.photo))))
        return 0
    if args.time_child:
        print(json.dumps(_measure(args.time_child, args.photo, args.repeat)))
        return 0
    if not args.targets:
        parser.error("give model files or benchmark run folders")
    return run_and_emit(lambda: run(args.targets, args.photo, args.repeat, args.peak_mp), print_report, args.json)


if __name__ == "__main__":
    sys.exit(main())
