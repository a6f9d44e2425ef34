"""The ``crackbench`` command line. It parses and checks arguments, then dispatches; the work lives
in the library modules, imported lazily so ``crackbench data audit`` never loads TensorFlow.

Problems a user can fix (:class:`~crackbench.errors.CrackbenchError`: bad data, bad arguments, a
file that is not a model) print one line and exit 1; anything else is a bug and keeps its
traceback."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import __version__
from .errors import CrackbenchError, UsageError

EXIT_DATA = 1


def _print_table(rows: list[dict], columns: list[str], file=None) -> None:
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) if rows else len(c) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns), file=file)
    for r in rows:
        print("  ".join(str(r.get(c, "")).ljust(widths[c]) for c in columns), file=file)


def _emit(obj, as_json: bool, text) -> None:
    if as_json:
        json.dump(obj, sys.stdout, indent=2, default=str)
        print()
    else:
        text()


# ---------------------------------------------------------------- data
def cmd_data_audit(args) -> int:
    from .dataset import scan_dataset

    ds = scan_dataset(args.source, max_pixels=args.max_pixels, strict=args.strict, n_jobs=args.jobs)
    summary = ds.summary()
    dups = ds.duplicate_groups()
    near = ds.near_duplicate_groups(args.near_distance) if args.near_distance is not None else []
    conflicts = ds.label_conflicts()
    not_used = [r for r in ds.records if r.status != "used"]
    payload = {
        **summary,
        "not_used": [{"path": r.rel, "status": r.status, "reason": r.reason, "detail": r.detail}
                     for r in not_used],
        "duplicate_group_list": [[r.rel for r in g] for g in dups],
        "near_distance": args.near_distance,
        "near_duplicate_groups": len(near), "near_duplicate_files": sum(len(g) for g in near),
        "near_duplicate_group_list": [[r.rel for r in g] for g in near],
        "label_conflict_list": [[f"{r.rel} ({r.label})" for r in g] for g in conflicts],
    }

    def text():
        print(f"dataset  {summary['root']} ({summary['source']}, {len(ds.classes)} classes)")
        print(f"files    {summary['files']}  used {summary['used']}  skipped {summary['skipped']}  "
              f"ignored {summary['ignored']}")
        print()
        _print_table([{"class": c, "images": n} for c, n in summary["classes"].items()], ["class", "images"])
        empty = [c for c, n in summary["classes"].items() if n == 0]
        if empty:
            print(f"warning: class folders with no usable image: {', '.join(empty)}")
        print()
        sizes = list(summary["sizes"].items())
        print("sizes    " + ", ".join(f"{s} ({n})" for s, n in sizes[:8])
              + (f", ... {len(sizes) - 8} more" if len(sizes) > 8 else ""))
        print(f"exact duplicates  {summary['duplicate_groups']} groups, {summary['duplicate_files']} files "
              f"({summary['redundant_copies']} redundant copies)")
        if args.near_distance is not None:
            print(f"near duplicates   {len(near)} groups, {sum(len(g) for g in near)} files (difference hashes at "
                  f"most {args.near_distance} of 256 bits apart; largest group {max(map(len, near), default=0)})")
        print(f"label conflicts   {summary['label_conflicts']}")
        for g in conflicts:
            print("  conflict: " + ", ".join(f"{r.rel} ({r.label})" for r in g))
        shown = dups if args.all else dups[:10]
        for g in shown:
            print("  duplicates: " + ", ".join(r.rel for r in g))
        if len(shown) < len(dups):
            print(f"  ... {len(dups) - len(shown)} more groups (--all lists them, --json gives everything)")
        shown = near if args.all else near[:10]
        for g in shown:
            print("  near duplicates: " + ", ".join(r.rel for r in g))
        if len(shown) < len(near):
            print(f"  ... {len(near) - len(shown)} more near-duplicate groups (--all lists them)")
        if not_used:
            print()
            _print_table([{"status": r.status, "reason": r.reason, "path": r.rel, "detail": r.detail}
                          for r in not_used], ["status", "reason", "path", "detail"])

    _emit(payload, args.json, text)
    return 0


def cmd_data_split(args) -> int:
    from .manifest import make_manifest

    out = Path(args.out)
    _check_writable(out)
    side = out.with_name(out.stem + ".skipped.csv")
    frame, ds = make_manifest(args.source, out, seed=args.seed, val=args.val, test=args.test,
                              group_by=args.group_by, near_distance=args.near_distance,
                              max_pixels=args.max_pixels, strict=args.strict, n_jobs=args.jobs)
    n_not_used = len(ds.records) - len(ds.used)
    counts = frame.groupby(["split", "label"]).size().unstack(fill_value=0)
    counts = counts.reindex(["train", "val", "test"], fill_value=0)
    rows = [{"split": s, **{lab: int(n) for lab, n in counts.loc[s].items()},
             "total": int(counts.loc[s].sum())} for s in counts.index]
    payload = {"manifest": str(out), "skipped_list": str(side), "seed": args.seed, "splits": rows,
               "groups": int(frame["group"].nunique()), "not_used": n_not_used,
               "group_by_unmatched": frame.attrs.get("unmatched", 0),
               "empty_classes": [c for c, n in ds.summary()["classes"].items() if n == 0]}
    if payload["empty_classes"]:
        print(f"warning: class folders with no usable image: {', '.join(payload['empty_classes'])} "
              f"(not in the manifest)", file=sys.stderr)

    def text():
        _print_table(rows, ["split", *map(str, counts.columns), "total"])
        near = (f"near duplicates (<= {args.near_distance} bits), " if args.near_distance is not None
                else "")
        print(f"groups {payload['groups']} (exact duplicates, {near}and --group-by groups never straddle splits)")
        if payload["group_by_unmatched"]:
            print(f"warning: {payload['group_by_unmatched']} file names did not match --group-by; "
                  f"each is its own group")
        print(f"wrote {out}; {n_not_used} files not used, listed in {side}")

    _emit(payload, args.json, text)
    return 0


def cmd_data_synth(args) -> int:
    from .synthetic import make_synthetic_dataset, make_synthetic_photos

    _check_writable(Path(args.out), folder=True, option="OUT")
    if args.photos:
        width, height = args.size or (2048, 1536)
        n = args.n or 4
        out = make_synthetic_photos(args.out, n, seed=args.seed, width=width, height=height)
        print(f"wrote {n} synthetic {width}x{height} photos to {out / 'images'} and their crack masks to "
              f"{out / 'masks'}")
        return 0
    width, height = args.size or (227, 227)
    if width != height:
        raise UsageError(f"--size {width}x{height}: patches are square; give one number (or use --photos)")
    n = args.n or 2000
    if n < 2:
        raise UsageError(f"--n {n}: the patch dataset needs at least 2 images (one per class)")
    out = make_synthetic_dataset(args.out, n, seed=args.seed, size=width)
    print(f"wrote {n} synthetic images to {out} (Positive/, Negative/)")
    return 0


# ---------------------------------------------------------------- features
def cmd_features_list(args) -> int:
    from crackbench.features import FEATURE_SETS, make_feature_set

    rows = []
    for name, (_, description) in FEATURE_SETS.items():
        rows.append({"set": name, "features": len(make_feature_set(name).get_feature_names_out()),
                     "description": description})
    _emit(rows, args.json, lambda: _print_table(rows, ["set", "features", "description"]))
    return 0


def cmd_features_extract(args) -> int:
    import time

    from crackbench.features import extract, make_feature_set
    from crackbench.features.batch import default_cache_dir, save_features

    from .manifest import read_manifest

    out = Path(args.out)
    if out.suffix not in (".parquet", ".npz"):
        raise UsageError(f"--out must end in .parquet or .npz, got {out.name!r}")
    _check_writable(out)
    manifest = read_manifest(args.manifest)
    extractor = make_feature_set(args.set)
    cache_dir = None if args.no_cache else (args.cache_dir or default_cache_dir())
    start = time.perf_counter()
    features = extract(manifest, extractor, n_jobs=args.jobs, cache_dir=cache_dir)
    seconds = time.perf_counter() - start
    out = save_features(args.out, features, extractor.get_feature_names_out(), manifest)
    print(f"wrote {features.shape[0]} x {features.shape[1]} '{args.set}' features to {out} "
          f"({seconds:.1f} s, {features.shape[0] / seconds:.0f} images/s)")
    return 0


# ---------------------------------------------------------------- models
def cmd_models(args) -> int:
    from .registry import DEFAULT_MODEL, builtin_models, model_card, model_kinds, render_card

    if args.card:
        card = model_card(args.card)
        _emit(card, args.json, lambda: print(render_card(card), end=""))
        return 0
    shipped = builtin_models()
    rows = [{"model": k.name, "file": k.suffix, "installed": "yes" if k.available else f"no: {k.unavailable_reason()}",
             "built_in": ("yes (default)" if k.name == DEFAULT_MODEL else "yes") if k.name in shipped else "",
             "description": k.description} for k in model_kinds().values()]
    _emit(rows, args.json, lambda: _print_table(rows, ["model", "file", "description", "installed", "built_in"]))
    return 0


def _load_for_use(spec: str | None):
    """The model ``--model`` names (a file or a built-in name), or the built-in default, saying so."""
    from .registry import DEFAULT_MODEL, load_model, model_card, resolve_model

    if spec is None:
        card = model_card(DEFAULT_MODEL)
        print(f"using the built-in model {card['name']} (trained on {card['training_data']['name']}; "
              f"`crackbench models --card {card['name']}` says where not to trust it)", file=sys.stderr)
    return load_model(resolve_model(spec))


def cmd_adapt(args) -> int:
    from tqdm.auto import tqdm

    from .imageio import ImageError, read_image
    from .model import iter_image_files
    from .registry import adapt_model, check_adaptable, save_model

    model = _load_for_use(args.model)
    check_adaptable(model)  # a forest or the reference CNN: one line, before reading anything
    paths = list(iter_image_files(args.paths))
    if not paths:
        raise UsageError("no image files found in the given paths")
    images, skipped = [], []
    for path in tqdm(paths, desc="read", unit="img", leave=False):
        try:
            images.append(read_image(path, mode=model.input_mode, max_pixels=args.max_pixels))
        except ImageError as exc:
            skipped.append({"path": path, "error": exc.reason, "detail": exc.detail})
    if skipped:
        _print_table(skipped, ["path", "error", "detail"], file=sys.stderr)
        print(f"{len(skipped)} of {len(paths)} files could not be used (listed above)", file=sys.stderr)
    adapted = adapt_model(model, images)
    out = save_model(adapted, args.out)
    print(f"adapted {model.name} to {len(images)} unlabelled images; wrote {out}")
    return 0


def cmd_train(args) -> int:
    import time

    from crackbench.features.batch import default_cache_dir

    from .registry import TrainOptions, get_kind, train_model

    out = Path(args.out)
    kind = get_kind(args.model)  # unknown names, a wrong suffix, a missing extra: before any work
    if out.suffix != kind.suffix:
        raise UsageError(f"--out for model {kind.name!r} must end in {kind.suffix}, got {out.name!r}")
    if not kind.available:
        raise UsageError(kind.unavailable_reason())
    _check_writable(out)
    if args.manifest:
        manifest = Path(args.manifest)
    else:
        from .manifest import make_manifest

        manifest = out.with_suffix(".manifest.csv")
        _, ds = make_manifest(args.data, manifest, seed=args.seed, n_jobs=args.jobs)
        print(f"split {args.data} into {manifest} (seed {args.seed}; {len(ds.used)} images used, "
              f"{len(ds.records) - len(ds.used)} not used: listed in {manifest.stem}.skipped.csv)")
    options = TrainOptions(seed=args.seed, n_jobs=args.jobs, epochs=args.epochs, image_size=args.image_size,
                           cache_dir=None if args.no_cache else (args.cache_dir or default_cache_dir()))
    start = time.perf_counter()
    model = train_model(kind.name, manifest, out, options)
    val = model.metadata["val_metrics"]
    print(f"trained {kind.name} in {time.perf_counter() - start:.1f} s; validation accuracy "
          f"{val['accuracy']:.4f}, F1 {val['f1']:.4f}, ROC-AUC {val['roc_auc']:.4f}; wrote {out}")
    return 0


def _size(text: str) -> tuple[int, int]:
    """``N`` (a square) or ``WxH``, each side at least 16 pixels."""
    parts = text.lower().split("x")
    try:
        width, height = (int(parts[0]),) * 2 if len(parts) == 1 else map(int, parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N or WxH (e.g. 227 or 4032x3024), got {text!r}") from None
    if min(width, height) < 16:
        raise argparse.ArgumentTypeError(f"sides must be at least 16 pixels, got {text!r}")
    return width, height


def _check_writable(out: Path, *, folder: bool = False, option: str = "--out") -> None:
    """Fail before any work, naming the option, when ``out`` cannot be written (as a file, or
    with ``folder`` as a folder to create or reuse)."""
    import os

    if folder and out.exists() and not out.is_dir():
        raise UsageError(f"{option} {out} exists and is not a folder")
    if not folder and out.is_dir():
        raise UsageError(f"{option} {out} is a folder; give a file name")
    existing = next(p for p in [out if folder else out.parent, *(out if folder else out.parent).parents]
                    if p.exists() or p == Path(p.anchor or "."))
    if not existing.is_dir():
        raise UsageError(f"{option} {out}: {existing} is a file, not a folder")
    target = out if folder and out.is_dir() else existing
    if not os.access(target, os.W_OK | os.X_OK):
        raise UsageError(f"{option} {out}: no permission to write in {target}")


def cmd_predict(args) -> int:
    import csv

    from tqdm.auto import tqdm

    from .model import iter_image_files, predict_files

    model = _load_for_use(args.model)
    paths = list(iter_image_files(args.paths))
    if not paths:
        raise UsageError("no image files found in the given paths")
    rows = [p for p in tqdm(predict_files(model, paths, max_pixels=args.max_pixels), total=len(paths),
                            desc="predict", unit="img", leave=False)]
    records = [{"path": r.path, "label": r.label, "probability": None if r.error else round(r.probability, 6),
                "error": r.error, "detail": r.detail} for r in rows]
    if args.json:
        json.dump({"model": model.name, "positive_class": model.positive_class, "predictions": records},
                  sys.stdout, indent=2)
        print()
    elif args.csv:
        writer = csv.DictWriter(sys.stdout, fieldnames=list(records[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(records)
    else:
        _print_table([{**r, "probability": "" if r["probability"] is None else f"{r['probability']:.4f}"}
                      for r in records], ["path", "label", "probability", "error"])
    failed = sum(1 for r in rows if r.error)
    if failed:
        print(f"{failed} of {len(rows)} files could not be used (see the error column)", file=sys.stderr)
    return EXIT_DATA if failed == len(rows) else 0


# ---------------------------------------------------------------- scan
def cmd_scan(args) -> int:
    from .model import iter_image_files
    from .scan import scan_files

    out = Path(args.out)
    _check_writable(out, folder=True)
    if args.masks and not Path(args.masks).is_dir():
        raise UsageError(f"--masks {args.masks}: no such folder")
    model = _load_for_use(args.model)
    paths = list(iter_image_files(args.paths))
    if not paths:
        raise UsageError("no image files found in the given paths")
    payload = scan_files(model, paths, out, tile=args.tile, stride=args.stride, scale=args.scale,
                         threshold=args.threshold, masks=args.masks, min_crack_fraction=args.min_crack_fraction,
                         max_pixels=args.max_pixels)
    rows = payload["photos"]
    _print_table([{k: r[k] for k in ("photo", "tiles", "cracked_tiles", "max_probability", "seconds", "error")}
                  for r in rows], ["photo", "tiles", "cracked_tiles", "max_probability", "seconds", "error"])
    if "evaluation" in payload:
        o = payload["evaluation"]["overall"]
        print(f"against the masks ({o['photos_evaluated']} photos, {o.get('tiles', 0)} tiles): "
              + ", ".join(f"{k} {o[k]:.4f}" for k in ("roc_auc", "average_precision", "balanced_accuracy", "f1",
                                                       "crack_pixel_recall") if k in o))
    failed = sum(1 for r in rows if r["error"])
    print(f"wrote {out / 'scan.csv'}, {out / 'scan.json'} and four files per photo to {out}")
    if failed:
        print(f"{failed} of {len(rows)} photos could not be scanned (see the error column)", file=sys.stderr)
    return EXIT_DATA if failed == len(rows) else 0


# ---------------------------------------------------------------- cache
def cmd_cache(args) -> int:
    from crackbench.features.batch import cache_info, clear_cache, default_cache_dir

    root = Path(args.cache_dir) if args.cache_dir else default_cache_dir()
    if args.action == "clear":
        removed, freed = clear_cache(root, stale_only=args.stale)
        print(f"removed {removed} feature sets ({freed / 2**20:.1f} MiB) from {root}")
        return 0
    rows = cache_info(root)
    _emit({"root": str(root), "feature_sets": rows}, args.json, lambda: (
        print(f"{root}: {len(rows)} feature sets, {sum(r['bytes'] for r in rows) / 2**20:.1f} MiB"),
        _print_table([{**r, "MiB": f"{r['bytes'] / 2**20:.1f}"} for r in rows],
                     ["key", "extractor", "crackbench", "rows", "MiB", "current"]) if rows else None))
    return 0


# ---------------------------------------------------------------- benchmark
def cmd_benchmark(args) -> int:
    import time

    from crackbench.benchmarks import run_benchmark, write_reports
    from crackbench.benchmarks.harness import select_models
    from crackbench.benchmarks.report import markdown_table

    models = None if args.models in (None, "all") else [m.strip() for m in args.models.split(",") if m.strip()]
    select_models(models)  # unknown names or a missing extra: one line, before any work
    data = args.data or []
    if args.adapt:
        return _benchmark_adapt(args, models)
    if args.adapt_sizes:
        raise UsageError("--adapt-sizes needs --adapt TARGET=DIR")
    if len(data) > 1 or args.test_only or args.train:
        return _benchmark_matrix(args, models)
    if len(args.group_by or []) > 1:
        raise UsageError("one --group-by for one dataset; several are for several --data NAME=DIR")
    data = data[0].partition("=")[2] or data[0] if data else None
    group_by = args.group_by[0] if args.group_by else None
    out = Path(args.out) if args.out else Path("runs") / (
        f"{Path(data).name if data else Path(args.manifest).stem if args.manifest else 'synthetic'}"
        f"-seed{args.seed}")
    _check_writable(out, folder=True)
    start = time.perf_counter()
    results = run_benchmark(out, data=data, manifest=args.manifest, models=models, test_data=args.test_data,
                            seed=args.seed, force=args.force, n_jobs=args.jobs, epochs=args.epochs,
                            cnn_size=args.image_size, n_synthetic=args.n_synthetic, group_by=group_by,
                            near_distance=args.near_distance, scan_data=args.scan_data, scan_tile=args.scan_tile)
    write_reports(out, results)
    print(markdown_table(results, "test"))
    if args.test_data:
        print("\ncross-dataset:\n" + markdown_table(results, "cross"))
    if any("scan" in m for m in results["models"]):
        print("\nwhole photos:\n" + markdown_table(results, "scan"))
    print(f"\n{len(results['models'])} models; this invocation took {time.perf_counter() - start:.0f} s. "
          f"Reports: {out / 'report.md'}, {out / 'report.html'}")
    return 0


def _named_group_by(items: list[str] | None, names: list[str]) -> dict[str, str]:
    group_by = {}
    for item in items or []:
        name, sep, regex = item.partition("=")
        if sep and name in names:
            group_by[name] = regex
        elif len(names) == 1:
            group_by[names[0]] = item
        else:
            raise UsageError(f"--group-by {item!r}: name the dataset it is for, NAME=REGEX (one of {', '.join(names)})")
    return group_by


def _benchmark_adapt(args, models) -> int:
    import time

    from crackbench.benchmarks.matrix import parse_named, run_adapt
    from crackbench.benchmarks.report import write_adapt_reports

    for option, value in (("--manifest", args.manifest), ("--test-data", args.test_data), ("--scan-data",
                          args.scan_data), ("--test-only", args.test_only), ("--train", args.train)):
        if value:
            raise UsageError(f"{option} does not go with --adapt")
    if len(args.data or []) != 1:
        raise UsageError("--adapt needs exactly one --data: the source dataset the models are trained on")
    source = next(iter(parse_named(args.data, "--data").items()))
    target = next(iter(parse_named([args.adapt], "--adapt").items()))
    for name, folder in (source, target):
        if not Path(folder).exists():
            raise UsageError(f"{name}: {folder}: no such folder or file")
    sizes = args.adapt_sizes or [0, 25, 50, 100, 200]
    out = Path(args.out) if args.out else Path("runs") / f"adapt-{target[0]}-seed{args.seed}"
    _check_writable(out, folder=True)
    start = time.perf_counter()
    adapt = run_adapt(out, source, target, sizes, group_by=_named_group_by(args.group_by, [source[0], target[0]]),
                      models=models, seed=args.seed, near_distance=args.near_distance, n_jobs=args.jobs,
                      epochs=args.epochs, cnn_size=args.image_size, force=args.force)
    write_adapt_reports(out, adapt)
    print((out / "adapt.md").read_text())
    print(f"this invocation took {time.perf_counter() - start:.0f} s. Reports: {out / 'adapt.md'}, "
          f"{out / 'adapt.html'}")
    return 0


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 0:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers >= 0 (e.g. 0,25,50,100,200), got {text!r}")
    return sizes


def _benchmark_matrix(args, models) -> int:
    import time

    from crackbench.benchmarks.matrix import parse_named, run_matrix
    from crackbench.benchmarks.report import write_matrix_reports

    for option, value in (("--manifest", args.manifest), ("--test-data", args.test_data),
                          ("--scan-data", args.scan_data)):
        if value:
            raise UsageError(f"{option} is for a single-dataset run; with several datasets use --data NAME=DIR "
                             f"and --test-only NAME=DIR")
    datasets = parse_named(args.data, "--data")
    test_only = parse_named(args.test_only, "--test-only")
    for name, folder in {**datasets, **test_only}.items():
        if not Path(folder).exists():
            raise UsageError(f"{name}: {folder}: no such folder or file")
    group_by = _named_group_by(args.group_by, list(datasets))
    out = Path(args.out) if args.out else Path("runs") / f"matrix-seed{args.seed}"
    _check_writable(out, folder=True)
    start = time.perf_counter()
    matrix = run_matrix(out, datasets, test_only=test_only, train=args.train, group_by=group_by, models=models,
                        seed=args.seed, near_distance=args.near_distance, n_jobs=args.jobs, epochs=args.epochs,
                        cnn_size=args.image_size, force=args.force)
    write_matrix_reports(out, matrix)
    print((out / "matrix.md").read_text())
    print(f"this invocation took {time.perf_counter() - start:.0f} s. Reports: {out / 'matrix.md'}, "
          f"{out / 'matrix.html'}; each training set's full report in {out}/train-<name>/")
    return 0


def cmd_report(args) -> int:
    from crackbench.benchmarks import compare_runs, write_reports

    if args.targets[0] == "compare":
        if len(args.targets) != 3:
            raise UsageError("usage: crackbench report compare RUN_A RUN_B")
        print(compare_runs(args.targets[1], args.targets[2]))
        return 0
    if len(args.targets) != 1:
        raise UsageError("usage: crackbench report RUN_DIR  |  crackbench report compare RUN_A RUN_B")
    run_dir = Path(args.targets[0])
    write_reports(run_dir)
    print(f"rendered {run_dir / 'report.md'}, {run_dir / 'report.html'}, {run_dir / 'results.csv'} and "
          f"{run_dir / 'figures'} from {run_dir / 'results.json'}")
    return 0


# ---------------------------------------------------------------- parser
def _int_at_least(low: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value
    parse.__name__ = "integer"
    return parse


def _jobs(text: str) -> int:
    value = _int_at_least(-(2**31))(text)
    if value == 0:
        raise argparse.ArgumentTypeError("0 workers cannot run anything: give -1 (all cores) or a count")
    return value


def _number(text: str, ok, expected: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not ok(value):
        raise argparse.ArgumentTypeError(f"must be {expected}, got {value}")
    return value


def _positive(text: str) -> float:
    return _number(text, lambda v: v > 0, "positive")


def _fraction(text: str) -> float:
    return _number(text, lambda v: 0.0 <= v < 1.0, "in [0, 1)")


def _near(text: str) -> int | None:
    if text == "off":
        return None
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 256:
        raise argparse.ArgumentTypeError(f"expected a number of bits from 0 to 256, or off; got {text!r}")
    return value


def _add_near_option(p: argparse.ArgumentParser) -> None:
    from .duplicates import DEFAULT_NEAR_DISTANCE

    p.add_argument("--near-distance", type=_near, default=DEFAULT_NEAR_DISTANCE, metavar="BITS|off",
                   help="images whose 256-bit difference hashes differ in at most BITS bits are near duplicates "
                   "and share a split; off: exact duplicates only (default %(default)s)")


def _add_scan_options(p: argparse.ArgumentParser) -> None:
    from .imageio import DEFAULT_MAX_PIXELS

    p.add_argument("--strict", action="store_true", help="fail on the first unusable image instead of "
                   "skipping and recording it")
    p.add_argument("--max-pixels", type=_int_at_least(1), default=DEFAULT_MAX_PIXELS,
                   help="skip images with more pixels than this (default %(default)s)")
    p.add_argument("--jobs", type=_jobs, default=-1, help="parallel workers (default: all cores)")


def _add_scheduler_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scheduler", metavar="ADDRESS|local[:N]|none",
                   help="run the work on the Dask cluster at ADDRESS (tcp://host:8786), or on a local cluster of N "
                   "worker processes; default $DASK_SCHEDULER_ADDRESS if set, else this process's own workers. "
                   "Needs the dask extra")


def build_parser() -> argparse.ArgumentParser:
    from .imageio import DEFAULT_MAX_PIXELS

    parser = argparse.ArgumentParser(
        prog="crackbench",
        description="Concrete-crack image classification benchmarks: handcrafted features + classical ML "
        "beside a reference CNN.")
    parser.add_argument("--version", action="version", version=f"crackbench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    data = sub.add_parser("data", help="inspect, split and generate datasets")
    dsub = data.add_subparsers(dest="data_command", required=True, metavar="SUBCOMMAND")

    p = dsub.add_parser("audit", help="count images per class, sizes, unusable files, duplicates, "
                        "label conflicts")
    p.add_argument("source", help="dataset folder (one sub-folder per class) or CSV with path,label")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--all", action="store_true", help="list every duplicate group")
    _add_near_option(p)
    _add_scan_options(p)
    p.set_defaults(func=cmd_data_audit)

    p = dsub.add_parser("split", help="write the train/val/test split manifest every model shares")
    p.add_argument("source", help="dataset folder or CSV")
    p.add_argument("--out", required=True, help="manifest CSV to write")
    p.add_argument("--seed", type=_int_at_least(0), default=0, help="split seed (default %(default)s)")
    p.add_argument("--val", type=_fraction, default=0.15, help="validation fraction (default %(default)s)")
    p.add_argument("--test", type=_fraction, default=0.15, help="test fraction (default %(default)s)")
    p.add_argument("--group-by", metavar="REGEX", help="regular expression on the file name giving a group "
                   "id; a group never straddles splits (SDNET2018: '^([^-]+)-')")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    _add_near_option(p)
    _add_scan_options(p)
    p.set_defaults(func=cmd_data_split)

    p = dsub.add_parser("synth", help="generate the synthetic crack dataset (Mendeley layout), or whole photos "
                        "with crack masks (--photos)")
    p.add_argument("out", help="output folder")
    p.add_argument("--photos", action="store_true", help="write whole photos to OUT/images and their crack masks to "
                   "OUT/masks (the layout of scan --masks and benchmark --scan-data)")
    p.add_argument("--n", type=_int_at_least(1), default=None,
                   help="number of images, half per class (default 2000), or of photos (default 4)")
    p.add_argument("--seed", type=_int_at_least(0), default=0, help="generator seed (default %(default)s)")
    p.add_argument("--size", type=_size, default=None, metavar="N | WxH",
                   help="patch side in pixels (default 227), or photo size (default 2048x1536)")
    p.set_defaults(func=cmd_data_synth)

    feats = sub.add_parser("features", help="list feature sets, extract features from a manifest")
    fsub = feats.add_subparsers(dest="features_command", required=True, metavar="SUBCOMMAND")
    p = fsub.add_parser("list", help="describe each feature set and its dimensionality")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_features_list)
    p = fsub.add_parser("extract", help="compute one feature set for every manifest row")
    p.add_argument("--manifest", required=True, help="split manifest CSV (crackbench data split)")
    p.add_argument("--set", required=True, choices=["hog", "lbp", "edges", "combined", "ridge", "robust"],
                   help="feature set (crackbench features list)")
    p.add_argument("--out", required=True, help="output .parquet or .npz")
    _add_scheduler_option(p)
    _add_cache_options(p)
    p.set_defaults(func=cmd_features_extract)

    p = sub.add_parser("models", help="list the models train and benchmark know, and the built-in trained ones")
    p.add_argument("--card", metavar="NAME", help="print the model card of a built-in model: its data, results "
                   "in and out of domain, and where not to trust it")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("train", help="train one model on a manifest (or a folder, split first)")
    p.add_argument("--model", required=True, help="a name from `crackbench models`")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", help="dataset folder or CSV; split with --seed, manifest written beside --out")
    src.add_argument("--manifest", help="split manifest CSV")
    p.add_argument("--out", required=True, help="model file: .skops (classical) or .keras (cnn)")
    p.add_argument("--seed", type=_int_at_least(0), default=0, help="split and training seed (default %(default)s)")
    p.add_argument("--epochs", type=_int_at_least(1), default=30, help="cnn: maximum epochs, also the length of the "
                   "cosine learning-rate decay (default %(default)s)")
    p.add_argument("--image-size", type=_int_at_least(16), default=None, help="cnn: input side in pixels "
                   "(default: the CNN's default; 256 is the original notebook's)")
    _add_cache_options(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("predict", help="label image files or folders with a trained model")
    p.add_argument("--model", help="a .skops or .keras file from `crackbench train`, or a built-in model's name "
                   "(default: the built-in edges-svm)")
    p.add_argument("paths", nargs="+", help="image files and/or folders (searched recursively)")
    p.add_argument("--max-pixels", type=_int_at_least(1), default=DEFAULT_MAX_PIXELS,
                   help="refuse images with more pixels than this, before decoding (default %(default)s)")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="JSON output")
    fmt.add_argument("--csv", action="store_true", help="CSV output")
    _add_scheduler_option(p)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("adapt", help="adapt a model to unlabelled images of a new surface (no labels needed)",
                       description="Adapt a trained model to a new surface from unlabelled images of it: patches "
                       "at the scale of the training images, a few hundred of them. An SVM pipeline standardises "
                       "its features with their mean and spread; a batch-normalised CNN takes its normalisation "
                       "statistics from them. Forests and the reference CNN have nothing to adapt.")
    p.add_argument("--model", help="a .skops or .keras file from `crackbench train`, or a built-in model's name "
                   "(default: the built-in edges-svm)")
    p.add_argument("--out", required=True, help="the adapted model's file (.skops or .keras, as the model)")
    p.add_argument("paths", nargs="+", help="image files and/or folders (searched recursively)")
    p.add_argument("--max-pixels", type=_int_at_least(1), default=DEFAULT_MAX_PIXELS,
                   help="refuse images with more pixels than this, before decoding (default %(default)s)")
    p.set_defaults(func=cmd_adapt)

    p = sub.add_parser("benchmark", help="train and evaluate every model on one split; write reports")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--data", action="append", metavar="[NAME=]DIR", help="dataset folder or CSV (default: "
                     "generate the synthetic dataset); repeat it for a train x test matrix over several datasets")
    src.add_argument("--manifest", help="split manifest CSV")
    p.add_argument("--test-only", action="append", metavar="[NAME=]DIR", help="matrix runs: a dataset only "
                   "tested on (all of it), never trained on; repeatable")
    p.add_argument("--train", choices=["all"], help="matrix runs: also train on the union of the --data sets")
    p.add_argument("--adapt", metavar="TARGET=DIR", help="labels-needed curve: train on --data plus N labelled "
                   "images of TARGET's training split, score on TARGET's test split")
    p.add_argument("--adapt-sizes", type=_sizes, metavar="N,N,...", help="the N of --adapt (default 0,25,50,100,200)")
    p.add_argument("--models", default="all", help="comma-separated names from `crackbench models`, or all "
                   "(default: all)")
    p.add_argument("--out", help="run folder (default runs/<dataset>-seed<seed>); rerunning resumes it")
    p.add_argument("--seed", type=_int_at_least(0), default=0,
                   help="split, training and bootstrap seed (default %(default)s)")
    p.add_argument("--test-data", help="second dataset evaluated in full (cross-dataset table)")
    p.add_argument("--group-by", action="append", metavar="[NAME=]REGEX", help="group regex for the split, as in "
                   "`data split`; in matrix runs NAME=REGEX for the dataset NAME (repeatable)")
    _add_near_option(p)
    p.add_argument("--scan-data", metavar="DIR", help="folder with images/ (whole photos) and masks/ (crack masks, "
                   "white = crack, named like the photos): every model scans them (default run: generated photos)")
    p.add_argument("--scan-tile", type=_int_at_least(16), default=227, help="tile side for --scan-data "
                   "(default %(default)s)")
    p.add_argument("--force", action="store_true", help="redo models already finished in this run folder")
    p.add_argument("--epochs", type=_int_at_least(1), default=30, help="cnn: maximum epochs, also the length of the "
                   "cosine learning-rate decay (default %(default)s)")
    p.add_argument("--image-size", type=_int_at_least(16), default=None,
                   help="cnn: input side (default: the CNN default)")
    p.add_argument("--n-synthetic", type=_int_at_least(20), default=2000, help="images generated without --data "
                   "(default %(default)s)")
    p.add_argument("--jobs", type=_jobs, default=-1, help="parallel workers (default: all cores)")
    _add_scheduler_option(p)
    p.set_defaults(func=cmd_benchmark)

    p = sub.add_parser("scan", help="scan whole photographs tile by tile: where are the cracks?")
    p.add_argument("--model", help="a .skops or .keras file from `crackbench train`, or a built-in model's name "
                   "(default: the built-in edges-svm)")
    p.add_argument("paths", nargs="+", help="photos and/or folders (searched recursively)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--tile", type=_int_at_least(16), default=227, help="tile side in pixels (default %(default)s)")
    p.add_argument("--stride", type=_int_at_least(1), default=None, help="tile step (default: half a tile)")
    p.add_argument("--scale", type=_positive, default=1.0, help="resample the photo by 1/SCALE before tiling: 2 for "
                   "a photo taken from twice the distance of the training patches (default %(default)s)")
    p.add_argument("--threshold", type=_fraction, default=0.5, help="P(crack) that flags a tile (default %(default)s)")
    p.add_argument("--masks", help="folder of crack masks (white = crack) named like the photos: score the tiles")
    p.add_argument("--min-crack-fraction", type=_fraction, default=0.002, help="with --masks, the share of a tile's "
                   "pixels that must be crack for the tile to count as cracked (default %(default)s)")
    p.add_argument("--max-pixels", type=_int_at_least(1), default=DEFAULT_MAX_PIXELS,
                   help="refuse larger photos before decoding (default %(default)s)")
    _add_scheduler_option(p)
    p.set_defaults(func=cmd_scan)

    p = sub.add_parser("cache", help="show or clear the feature cache")
    p.add_argument("action", choices=["info", "clear"], help="info: what is cached; clear: remove it")
    p.add_argument("--stale", action="store_true", help="clear: only feature sets of other crackbench versions")
    p.add_argument("--cache-dir", default=None,
                   help="feature cache folder (default: $CRACKBENCH_CACHE or ~/.cache/crackbench)")
    p.add_argument("--json", action="store_true", help="machine-readable output (info)")
    p.set_defaults(func=cmd_cache)

    p = sub.add_parser("report", help="render a run's reports from its results.json, or compare two runs")
    p.add_argument("targets", nargs="+", metavar="RUN_DIR | compare RUN_A RUN_B")
    p.set_defaults(func=cmd_report)
    return parser


def _add_cache_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--jobs", type=_jobs, default=-1, help="parallel workers (default: all cores)")
    p.add_argument("--cache-dir", default=None,
                   help="feature cache folder (default: $CRACKBENCH_CACHE or ~/.cache/crackbench)")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the feature cache")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if "scheduler" not in args:
            return args.func(args)
        from .cluster import connect, scheduler_spec

        spec = scheduler_spec(args.scheduler)  # a missing extra or a malformed value: one line, before any work
        if spec is None:
            return args.func(args)
        with connect(spec):
            return args.func(args)
    except (CrackbenchError, FileNotFoundError) as exc:
        print(f"crackbench: error: {exc}", file=sys.stderr)
        return EXIT_DATA
    except KeyboardInterrupt:
        print("crackbench: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

