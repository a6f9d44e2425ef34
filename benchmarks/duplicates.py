"""Near-duplicate hashing speed, and what the tolerance does to a real dataset.

    python -m crackbench.benchmarks.duplicates DIR [--jobs -1] [--json out.json]

On every image of ``DIR`` (a dataset folder), in one run:

- ``time_hash``: read, decode and hash every file (``crackbench.duplicates.image_hash``, what
  ``crackbench data audit`` and ``data split`` compute), on ``--jobs`` workers; and the hash alone on
  the decoded images, beside ``imagehash.dhash(hash_size=16)`` (the same 256 bits through Pillow)
  when imagehash is installed;
- ``time_group``: all-pairs Hamming grouping of the hashes;
- what copies cost in bits: the distance between a 220-px crop of an image and the same crop
  shifted by 1 to 5 px, or re-encoded at JPEG quality 50 (up to 400 images);
- the distance from each image to its nearest other image (how the tolerance separates copies from
  unrelated patches), and, per tolerance, the near-duplicate groups and how many test images of the
  seed-0 split made with exact duplicates only have a train image within it.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from joblib import Parallel, delayed

from crackbench.dataset import scan_dataset
from crackbench.duplicates import hash_array, image_hash, near_components, near_pairs, nearest_distance
from crackbench.imageio import read_image
from crackbench.manifest import split_dataset

from .features import run_and_emit

__all__ = ["main", "run"]

TOLERANCES = (0, 8, 16, 32, 48, 64)
BINS = ((0, 0), (1, 8), (9, 16), (17, 24), (25, 32), (33, 40), (41, 48), (49, 56), (57, 64), (65, 96), (97, 256))


def _hash_chunk(paths: list[str]) -> list[str]:
    return [image_hash(read_image(p, mode="gray")) for p in paths]


def run(folder: Path, n_jobs: int) -> dict:
    ds = scan_dataset(folder, n_jobs=n_jobs, progress=False)
    paths = [r.path for r in sorted(ds.used, key=lambda r: r.rel)]
    chunks = [paths[i:i + 256] for i in range(0, len(paths), 256)]
    _hash_chunk(paths[:2])  # warm-up
    start = time.perf_counter()
    hashes = [h for part in Parallel(n_jobs=n_jobs)(delayed(_hash_chunk)(c) for c in chunks) for h in part]
    read_decode_hash_s = time.perf_counter() - start
    sample = [read_image(p, mode="gray") for p in paths[:1000]]
    start = time.perf_counter()
    for img in sample:
        image_hash(img)
    ours_ms = (time.perf_counter() - start) / len(sample) * 1e3
    try:
        import imagehash
        from PIL import Image

        pil = [Image.fromarray(img) for img in sample]
        start = time.perf_counter()
        for img in pil:
            imagehash.dhash(img, hash_size=16)
        imagehash_ms = (time.perf_counter() - start) / len(pil) * 1e3
    except ImportError:
        imagehash_ms = None
    copies = []
    for label, change in [*((f"shifted {k} px", k) for k in (1, 2, 3, 5)), ("re-encoded, JPEG quality 50", 0)]:
        d = []
        for img in sample[:400]:
            base = img[:220, :220]
            if change:
                other = img[change:220 + change, change:220 + change]
            else:
                encoded = cv2.imencode(".jpg", base, [cv2.IMWRITE_JPEG_QUALITY, 50])[1]
                other = cv2.imdecode(encoded, cv2.IMREAD_GRAYSCALE)
            d.append(nearest_distance([image_hash(base)], [image_hash(other)])[0])
        copies.append({"copy": label, "median": float(np.median(d)), "p95": float(np.percentile(d, 95)),
                       "max": int(max(d))})
    near_pairs(hashes[:10], 8)  # compile
    start = time.perf_counter()
    pairs = near_pairs(hashes, max(TOLERANCES))
    group_s = time.perf_counter() - start
    nearest = nearest_distance(hashes)
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, len(hashes), (2, 20_000))
    words = hash_array(hashes)
    a, b = a[a != b], b[a != b]
    random_pairs = np.unpackbits((words[a] ^ words[b]).view(np.uint8), axis=1).sum(axis=1).tolist()
    histogram = [{"distance": f"{lo}" if lo == hi else f"{lo}-{hi}",
                  "images": int(((nearest >= lo) & (nearest <= hi)).sum())} for lo, hi in BINS]
    frame = split_dataset(ds, seed=0, near_distance=None)
    train, test = frame[frame["split"] == "train"], frame[frame["split"] == "test"]
    to_train = nearest_distance(list(test["phash"]), list(train["phash"]))
    tolerances = []
    for t in TOLERANCES:
        labels = near_components(hashes, t)
        sizes = np.bincount(labels)
        tolerances.append({"tolerance": t, "groups": int((sizes > 1).sum()), "files": int(sizes[sizes > 1].sum()),
                           "largest": int(sizes.max()), "test_within": int((to_train <= t).sum())})
    return {"folder": str(folder), "images": len(hashes), "jobs": n_jobs, "read_decode_hash_s": read_decode_hash_s,
            "hash_ms": ours_ms, "imagehash_ms": imagehash_ms, "group_s": group_s,
            "pairs_within_max": len(pairs), "copies": copies, "nearest_histogram": histogram,
            "random_pair_distance": {"median": float(np.median(random_pairs)),
                                     "p01": float(np.percentile(random_pairs, 1)), "min": min(random_pairs)},
            "tolerances": tolerances, "test_images": len(test)}


def print_report(r: dict) -> None:
    print(f"{r['images']:,} images of {r['folder']}, {r['jobs']} jobs\n")
    print("| step | seconds |\n|---|---:|")
    print(f"| time_hash: read, decode and hash every image | {r['read_decode_hash_s']:.2f} |")
    print(f"| time_group: all pairs within {max(TOLERANCES)} bits | {r['group_s']:.2f} |")
    print(f"\nhash of one decoded image: crackbench {r['hash_ms']:.3f} ms"
          + (f", imagehash.dhash(hash_size=16) {r['imagehash_ms']:.3f} ms "
             f"({r['imagehash_ms'] / r['hash_ms']:.1f}x)" if r["imagehash_ms"] else ", imagehash not installed"))
    print("\n| a 220-px crop against its copy | median bits | 95th percentile | max |\n|---|---:|---:|---:|")
    for c in r["copies"]:
        print(f"| {c['copy']} | {c['median']:.0f} | {c['p95']:.0f} | {c['max']} |")
    print("\n| distance to the nearest other image (bits of 256) | images |\n|---|---:|")
    for h in r["nearest_histogram"]:
        print(f"| {h['distance']} | {h['images']:,} |")
    rp = r["random_pair_distance"]
    print(f"\ntwo images drawn at random: median distance {rp['median']:.0f} bits, 1st percentile {rp['p01']:.0f}, "
          f"smallest {rp['min']}")
    print(f"\n| tolerance (bits) | near-duplicate groups | files in them | largest group | test images with a "
          f"train image within it (of {r['test_images']}, exact-duplicate split) |\n|---:|---:|---:|---:|---:|")
    for t in r["tolerances"]:
        print(f"| {t['tolerance']} | {t['groups']:,} | {t['files']:,} | {t['largest']} | {t['test_within']} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m crackbench.benchmarks.duplicates", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="a dataset folder (one sub-folder per class)")
    parser.add_argument("--jobs", type=int, default=-1, help="workers for reading and hashing (default: all cores)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    if not args.folder.is_dir():
        parser.error(f"{args.folder}: no such folder")
    return run_and_emit(lambda: run(args.folder, args.jobs), print_report, args.json)


if __name__ == "__main__":
    sys.exit(main())
