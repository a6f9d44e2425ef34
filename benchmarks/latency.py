"""Single-image latency, file -> label: crackbench's serving path beside plain scikit-learn, one run.

    python -m crackbench.benchmarks.latency RUN_DIR_OR_MODEL... [--data DIR]

For every model (a ``.skops`` / ``.keras`` file, or every model of a benchmark run folder), one
image at a time, decode included, p50 and p95 over ``--n`` images after ``--warmup`` calls:

- ``time_predict_file``: ``model.predict([path])``, crackbench's path (what ``crackbench predict``
  and the benchmark harness time);
- ``time_predict_file_sklearn`` (classical models): the reference, the same fitted scikit-learn
  ``Pipeline`` called directly, ``pipeline.predict_proba([read_image(path)])``;
- stage rows for classical models, ours and scikit-learn's: ``time_decode``, ``time_features``
  (the feature step) and ``time_classifier`` (scaling -> reduction -> classifier on one row);
- with ``--rounds R``, ours alone repeated R times: the spread of its p50 on this machine.

Ours and the reference alternate image by image, each going first on every other image, so
machine noise and warm caches favour neither; the ratio is reference / ours. Without ``--data`` it
uses freshly generated synthetic images and says so.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from crackbench.imageio import read_image
from crackbench.registry import FILE_FORMATS, load_model

from .features import _image_paths, run_and_emit
from .harness import time_calls

__all__ = ["main", "run"]


def _model_files(targets: list[Path]) -> list[Path]:
    files = []
    for target in targets:
        if target.is_dir():  # a run folder, or one model's folder in it
            found = sorted(target.glob("models/*/model.*")) or sorted(target.glob("model.*"))
            files += [p for p in found if p.suffix in FILE_FORMATS]
        elif target.is_file():
            files.append(target)
        else:
            raise FileNotFoundError(f"{target}: no such model file or run folder")
    if not files:
        raise FileNotFoundError(f"no model files in {', '.join(map(str, targets))}")
    # Keras models last: once TensorFlow's thread pools have run, they compete with the feature
    # threads of the classical models timed after them (combined-svm: p50 ~2.0 vs ~1.5 ms).
    return sorted(files, key=lambda f: f.suffix == ".keras")


def _classical_calls(model) -> dict:
    pipeline = model.pipeline
    features, tail = pipeline[0], pipeline[1:]
    images, rows = {}, {}

    def features_ours(path):
        rows[path] = model.features([images[path]])
        return rows[path]

    def decode(path):
        images[path] = read_image(path, mode=model.input_mode)
        return images[path]

    return {
        "time_predict_file": lambda p: model.predict([p]),
        "time_predict_file_sklearn": lambda p: pipeline.predict_proba([read_image(p, mode=model.input_mode)]),
        "time_decode": decode,
        "time_features": features_ours,
        "time_features_sklearn": lambda p: features.transform([images[p]]),
        "time_classifier": lambda p: model.score(rows[p]),
        "time_classifier_sklearn": lambda p: tail.predict_proba(rows[p]),
    }


def run(targets: list[Path], data: Path | None, n: int, warmup: int, rounds: int = 1) -> dict:
    paths, source = _image_paths(data, n)
    paths = [str(p) for p in paths[:n]]
    results = []
    for file in _model_files(targets):
        model = load_model(file)
        name = model.metadata.get("name", file.stem)
        classical = hasattr(model, "pipeline")
        calls = _classical_calls(model) if classical else {"time_predict_file": lambda p, m=model: m.predict([p])}
        timings = time_calls(calls, paths, warmup)
        # further rounds repeat only ours, file -> label: how much the p50 moves with the machine
        p50s = [timings["time_predict_file"]["p50_ms"]] + [
            time_calls({"x": calls["time_predict_file"]}, paths, warmup)["x"]["p50_ms"] for _ in range(rounds - 1)]
        results.append({"model": name, "file": str(file), "timings": timings, "predict_file_p50_rounds": p50s})
        ours = timings["time_predict_file"]["p50_ms"]
        ref = timings.get("time_predict_file_sklearn", {}).get("p50_ms")
        print(f"  {name}: p50 {ours:.2f} ms" + (f" (scikit-learn pipeline {ref:.2f} ms)" if ref else ""),
              file=sys.stderr)
    return {"source": source, "n": len(paths), "warmup": warmup, "rounds": rounds, "models": results}


def print_report(result: dict) -> None:
    print(f"data: {result['source']}")
    print(f"one image at a time, decode included; p50 / p95 over {result['n']} images after "
          f"{result['warmup']} warm-up calls; ours and scikit-learn alternate, each first on every other image\n")
    print("| model | benchmark | p50 (ms) | p95 (ms) | scikit-learn p50 (ms) | speed-up |")
    print("|---|---|---:|---:|---:|---:|")
    for r in result["models"]:
        t = r["timings"]
        for name in ("time_predict_file", "time_decode", "time_features", "time_classifier"):
            if name not in t:
                continue
            ref = t.get(f"{name}_sklearn")
            ref_cells = f"{ref['p50_ms']:.3f} | {ref['p50_ms'] / t[name]['p50_ms']:.1f}x" if ref else "- | -"
            print(f"| {r['model']} | {name} | {t[name]['p50_ms']:.3f} | {t[name]['p95_ms']:.3f} | {ref_cells} |")
    if result["rounds"] > 1:
        print(f"\nOurs alone, file -> label, {result['rounds']} rounds (the first is the one above):\n")
        print("| model | p50 min (ms) | p50 median (ms) | p50 max (ms) |")
        print("|---|---:|---:|---:|")
        for r in result["models"]:
            p50s = r["predict_file_p50_rounds"]
            print(f"| {r['model']} | {min(p50s):.3f} | {statistics.median(p50s):.3f} | {max(p50s):.3f} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m crackbench.benchmarks.latency", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("targets", type=Path, nargs="+", help="model files or benchmark run folders")
    parser.add_argument("--data", type=Path, default=None,
                        help="image folder, e.g. ../shared/data/concrete-crack-sample (default: generated "
                        "synthetic images)")
    parser.add_argument("--n", type=int, default=500, help="timed images per model (default 500)")
    parser.add_argument("--warmup", type=int, default=20, help="warm-up images per model (default 20)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="repeat ours, file -> label, this many times and report the spread of p50 (default 1)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    return run_and_emit(lambda: run(args.targets, args.data, args.n, args.warmup, args.rounds), print_report,
                        args.json)


if __name__ == "__main__":
    sys.exit(main())
