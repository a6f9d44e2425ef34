"""The reference CNN over several seeds on one split: how much of a result is the seed.

    python -m crackbench.benchmarks.cnn_study --manifest runs/concrete-crack-sample-seed0/manifest.csv \
        --seeds 0 1 2

Trains :func:`crackbench.cnn.train_cnn` with its defaults (or ``--epochs`` / ``--image-size`` /
``--batch-size``) once per seed on the manifest's train split, early-stopping on val, and prints
one row per seed: epochs run (best), seconds per epoch, val and test errors and accuracy, val
log-loss, then the test images every run got wrong. The test split is only predicted, never used
for a choice. ``docs/studies/cnn.md`` quotes its output.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["main", "run"]


def run(manifest: Path, seeds: list[int], epochs: int, image_size: int | None, batch_size: int) -> dict:
    from sklearn.metrics import log_loss

    from crackbench.cnn import train_cnn
    from crackbench.manifest import read_manifest

    frame = read_manifest(manifest)
    val, test = frame[frame["split"] == "val"], frame[frame["split"] == "test"]
    rows, wrong_sets = [], []
    for seed in seeds:
        with tempfile.TemporaryDirectory(prefix="crackbench-cnn-study-") as work:
            model = train_cnn(frame, work, seed=seed, epochs=epochs, image_size=image_size, batch_size=batch_size)
        meta = model.metadata
        row = {"seed": seed, "epochs_run": meta["epochs_run"], "best_epoch": meta["best_epoch"],
               "epoch_s": meta["timings"]["epoch_s"], "image_size": meta["input"]["size"], "device": meta["device"]}
        for name, part in (("val", val), ("test", test)):
            y = (part["label"] == model.positive_class).to_numpy()
            proba = model.predict_proba(list(part["path"]))[:, 1]
            wrong = part["path"][(proba >= 0.5) != y]
            row[f"{name}_errors"] = len(wrong)
            row[f"{name}_accuracy"] = 1 - len(wrong) / len(part)
            row[f"{name}_log_loss"] = float(log_loss(y, np.clip(proba, 1e-7, 1 - 1e-7), labels=[False, True]))
            if name == "test":
                wrong_sets.append({f"{Path(p).parent.name}/{Path(p).name}" for p in wrong})  # class/file
        rows.append(row)
        print(f"  seed {seed}: val errors {row['val_errors']}, test errors {row['test_errors']}", file=sys.stderr)
    always = sorted(set.intersection(*wrong_sets)) if wrong_sets else []
    return {"manifest": str(manifest), "n_val": len(val), "n_test": len(test), "batch_size": batch_size,
            "epochs": epochs, "rows": rows, "wrong_in_every_run": always}


def print_report(result: dict) -> None:
    print(f"manifest {result['manifest']}: {result['n_val']} val, {result['n_test']} test images; "
          f"max epochs {result['epochs']}, batch {result['batch_size']}\n")
    print("| seed | input (px) | epochs run (best) | s / epoch | val errors (accuracy) | val log-loss "
          "| test errors (accuracy) | device |")
    print("|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in result["rows"]:
        print(f"| {r['seed']} | {r['image_size']} | {r['epochs_run']} ({r['best_epoch']}) | {r['epoch_s']:.1f} "
              f"| {r['val_errors']} ({r['val_accuracy']:.4f}) | {r['val_log_loss']:.4f} "
              f"| {r['test_errors']} ({r['test_accuracy']:.4f}) | {r['device']} |")
    print(f"\nTest images wrong in every run ({len(result['wrong_in_every_run'])}): "
          + (", ".join(result["wrong_in_every_run"]) or "none"))


def main(argv: list[str] | None = None) -> int:
    from .features import emit

    parser = argparse.ArgumentParser(prog="python -m crackbench.benchmarks.cnn_study", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", type=Path, required=True, help="split manifest CSV (crackbench data split)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds (default 0 1 2)")
    parser.add_argument("--epochs", type=int, default=30, help="max epochs and cosine length (default 30)")
    parser.add_argument("--image-size", type=int, default=None, help="input side (default: the CNN's default)")
    parser.add_argument("--batch-size", type=int, default=16, help="batch size (default 16)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    if not args.manifest.is_file():
        print(f"error: {args.manifest}: no such manifest", file=sys.stderr)
        return 1
    try:
        import crackbench.cnn  # noqa: F401
    except ImportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return emit(run(args.manifest, args.seeds, args.epochs, args.image_size, args.batch_size), print_report,
                args.json)


if __name__ == "__main__":
    sys.exit(main())
