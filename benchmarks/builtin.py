"""Build a built-in model and its model card: train, evaluate in and out of domain, write both.

    python -m crackbench.benchmarks.builtin --data ../shared/data/concrete-crack-sample \\
        --test sdnet2018-decks=../shared/data/sdnet2018-decks \\
        --test sdnet2018-pavements=../shared/data/sdnet2018-pavements \\
        --scan uav75=../shared/data/uav75

trains ``--model`` (default ``edges-svm``) on the default split of ``--data`` (seed 0), scores its test
split, every ``--test`` dataset in full (never tuned on) and, tile by tile against the crack masks,
every ``--scan`` folder (``images/`` + ``masks/``), then writes ``<out>/<name>.skops``,
``<out>/<name>.card.json`` (default out: the package's ``crackbench/models``) and the rendered card to
``docs/models/<name>.md``. The card's "where not to trust it" lines come from those numbers.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import platform
import shlex
import sys
import tempfile
from pathlib import Path

import numpy as np

from crackbench import __version__
from crackbench.dataset import scan_dataset
from crackbench.errors import UsageError
from crackbench.files import atomic_path, write_json
from crackbench.manifest import make_manifest
from crackbench.model import iter_image_files, predict_files
from crackbench.registry import BUILTIN_DIR, DEFAULT_MODEL, TrainOptions, get_kind, load_model, render_card, train_model
from crackbench.scan import scan_files

from .harness import _dataset_hash, _environment
from .matrix import parse_named
from .metrics import evaluate

__all__ = ["build", "main"]

#: Below this balanced accuracy (patches) or tile ROC-AUC (photos), the card says not to use the model there.
TRUSTED_ABOVE = 0.80


def _score(model, paths: list[str], labels: list[str], seed: int) -> dict:
    rows = list(predict_files(model, paths))
    kept = [(r.probability, lab) for r, lab in zip(rows, labels, strict=True) if not r.error]
    proba = np.array([p for p, _ in kept])
    y = np.array([lab == model.positive_class for _, lab in kept], int)
    return {"n": len(kept), "positives": int(y.sum()), "unreadable": len(rows) - len(kept),
            "metrics": {k: v for k, v in evaluate(y, proba, seed=seed)["metrics"].items()
                        if k in ("accuracy", "balanced_accuracy", "roc_auc", "f1")}}


def build(data: Path, model_name: str, out: Path, docs: Path | None, tests: list[tuple[str, Path]],
          scans: list[tuple[str, Path]], seed: int = 0, progress: bool = True) -> dict:
    kind = get_kind(model_name)
    if kind.suffix != ".skops":
        raise UsageError(f"built-in models are classical pipelines (.skops); {model_name} is not")
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="crackbench-builtin-"))
    manifest, ds = make_manifest(data, work / "manifest.csv", seed=seed, n_jobs=-1, progress=progress)
    model_file = out / f"{model_name}.skops"
    train_model(model_name, work / "manifest.csv", model_file, TrainOptions(seed=seed, progress=progress))
    model = load_model(model_file)
    test = manifest[manifest["split"] == "test"]
    evaluations = [{"name": f"{data.name} test split (in domain)",
                    **_score(model, list(test["path"]), list(test["label"]), seed)}]
    for name, folder in tests:
        used = scan_dataset(folder, n_jobs=-1, progress=progress).used
        evaluations.append({"name": f"{name} (all)", **_score(model, [r.path for r in used],
                                                              [r.label for r in used], seed)})
    scan_results = []
    for name, folder in scans:
        photos = list(iter_image_files([folder / "images"]))
        payload = scan_files(model, photos, work / f"scan-{name}", masks=folder / "masks", progress=progress)
        settings = payload["settings"]
        scan_results.append({"name": name, "photos": payload["evaluation"]["overall"]["photos_evaluated"],
                             "tile": settings["tile"], "stride": settings["stride"],
                             "min_crack_fraction": settings["min_crack_fraction"],
                             "metrics": payload["evaluation"]["overall"]})
    limits = []
    for e in evaluations[1:]:
        ba = e["metrics"]["balanced_accuracy"]["value"]
        if ba < TRUSTED_ABOVE:
            limits.append(f"Patches like {e['name'].removesuffix(' (all)')}: balanced accuracy {ba:.2f} (0.50 is "
                          f"chance). Do not use it there without training on that kind of surface.")
    for sc in scan_results:
        auc = sc["metrics"]["roc_auc"]
        if not auc >= TRUSTED_ABOVE:
            limits.append(f"Scanning photographs like {sc['name']} at {sc['tile']}-px tiles: tile ROC-AUC {auc:.2f} "
                          f"(0.50 is chance): its crack map there is not evidence of a crack.")
    limits += [
        f"Anything unlike its training patches ({data.name}: 227x227 close-ups of concrete walls, cracks a few "
        f"pixels wide and clearly darker than the surface): other surfaces, textures, distances, lighting or "
        f"cameras. Check it on a few hundred labelled images of your own before relying on it.",
        "As the only check of a structure: it is a screening aid; a missed crack is possible at any threshold.",
    ]
    env = _environment()
    card = {
        "name": model_name, "kind": "classical", "description": model.metadata["description"],
        "file": model_file.name, "file_bytes": model_file.stat().st_size,
        "file_sha256": hashlib.sha256(model_file.read_bytes()).hexdigest(),
        "crackbench_version": __version__, "built": datetime.date.today().isoformat(),
        "hardware": f"{env['cpu']}, {env['cores']} cores, {platform.system()}",
        "command": "python -m crackbench.benchmarks.builtin " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
        "training_data": {"name": data.name, "n_images": len(manifest), "not_used": len(ds.records) - len(ds.used),
                          "dataset_sha256": _dataset_hash(manifest)},
        "split": {"seed": seed, "val": 0.15, "test": 0.15, "group_by": None,
                  "counts": {s: {lab: int(n) for lab, n in g["label"].value_counts().sort_index().items()}
                             for s, g in manifest.groupby("split")}},
        "params": model.metadata.get("best_params", model.metadata.get("params")),
        "val_metrics": model.metadata["val_metrics"],
        "evaluations": evaluations, "scans": scan_results, "limits": limits,
    }
    write_json(out / f"{model_name}.card.json", card)
    if docs is not None:
        docs.mkdir(parents=True, exist_ok=True)
        with atomic_path(docs / f"{model_name}.md") as tmp:
            tmp.write_text(render_card(card))
    return card


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m crackbench.benchmarks.builtin", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="training dataset (Positive/ and Negative/)")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="model kind (default %(default)s)")
    parser.add_argument("--test", action="append", metavar="NAME=DIR",
                        help="a dataset scored in full, out of domain (repeatable)")
    parser.add_argument("--scan", action="append", metavar="NAME=DIR",
                        help="a folder with images/ and masks/ scanned tile by tile (repeatable)")
    parser.add_argument("--seed", type=int, default=0, help="split and training seed (default %(default)s)")
    parser.add_argument("--out", type=Path, default=BUILTIN_DIR, help="where the model and card go "
                        "(default: the package's crackbench/models)")
    parser.add_argument("--docs", type=Path, default=Path("docs/models"),
                        help="where the rendered card goes (default %(default)s)")
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        parser.error(f"--data {args.data}: no such folder")
    try:
        tests, scans = parse_named(args.test, "--test"), parse_named(args.scan, "--scan")
    except UsageError as exc:
        parser.error(str(exc))
    missing = [folder for folder in (*tests.values(), *scans.values()) if not Path(folder).is_dir()]
    if missing:
        parser.error(f"{', '.join(missing)}: no such folder")
    card = build(args.data, args.model, args.out, args.docs, [(n, Path(f)) for n, f in tests.items()],
                 [(n, Path(f)) for n, f in scans.items()], seed=args.seed)
    print(render_card(card))
    return 0


if __name__ == "__main__":
    sys.exit(main())
