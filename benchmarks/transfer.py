"""What makes a crack classifier trained on one dataset hold up on others: one factor at a time.

    python -m crackbench.benchmarks.transfer --source ../shared/data/concrete-crack-sample \\
        --target decks=../shared/data/sdnet2018-decks --target pavements=../shared/data/sdnet2018-pavements \\
        --uav ../shared/data/uav75 --out runs/transfer

Every variant is trained on the source's training split only (seed 0, near duplicates kept
together) with the same classifier settings, and scored on:

- the source's validation and test splits (accuracy);
- each target's validation and test splits, split by photograph (``--group-by``, SDNET's
  ``<photo>-<patch>`` names by default), so no photograph is in both (balanced accuracy at the
  classifier's own threshold, and ROC-AUC);
- UAV75's tiles (128 px, stride 64, cracked when >= 0.2% of the tile is crack in the mask), its
  ``val`` photographs for choosing and its ``test`` photographs for reporting (``splits.csv``).

Further rows score trained models' files with the scale matched at test time: an image's score is
the highest probability of its tiles of 2/3 or 1/2 of its side (``crackbench scan --tile``).

The variant to ship is chosen on validation data only: the highest mean of the targets' validation
balanced accuracy and the UAV75 validation tile ROC-AUC, among variants and scanned rows with source
validation accuracy >= 0.995. Test columns are reported for every variant, chosen or not. Writes
``transfer.json``, ``transfer.md`` and ``figures/transfer.png`` to ``--out``; features are cached
there, so a rerun with more variants computes only the new ones.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import accuracy_score, balanced_accuracy_score, roc_auc_score
from sklearn.pipeline import FeatureUnion, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from crackbench.features import (
    Augmented,
    EdgeFeatures,
    HOGFeatures,
    LBPFeatures,
    MultiScale,
    Normalized,
    RidgeFeatures,
    combined_features,
    extract,
)
from crackbench.files import write_json
from crackbench.imageio import read_image

from .metrics import evaluate

__all__ = ["VARIANTS", "main", "run"]

SDNET_GROUPS = r"^([^-_]+)-"
MIN_SOURCE_VAL = 0.995


def _union(*parts):
    return FeatureUnion([(type(p).__name__, p) for p in parts], verbose_feature_names_out=False)


# name -> (factor studied, extractor factory, classifier[, training-image augmentation])
VARIANTS: dict[str, tuple] = {
    "edges / svm": ("baseline", EdgeFeatures, "svm"),
    "hog / svm": ("baseline", HOGFeatures, "svm"),
    "lbp / svm": ("baseline", LBPFeatures, "svm"),
    "combined / svm": ("baseline", combined_features, "svm"),
    "edges / rf": ("baseline", EdgeFeatures, "rf"),
    "edges, stretch / svm": ("normalisation", lambda: Normalized(EdgeFeatures(), "stretch"), "svm"),
    "edges, clahe / svm": ("normalisation", lambda: Normalized(EdgeFeatures(), "clahe"), "svm"),
    "edges, standardize / svm": ("normalisation", lambda: Normalized(EdgeFeatures(), "standardize"), "svm"),
    "combined, clahe / svm": ("normalisation", lambda: Normalized(combined_features(), "clahe"), "svm"),
    "combined, standardize / svm": ("normalisation", lambda: Normalized(combined_features(), "standardize"),
                                    "svm"),
    "edges, scales 1+0.5 / svm": ("scale", lambda: MultiScale(EdgeFeatures(), (1.0, 0.5)), "svm"),
    "hog, scales 1+0.5 / svm": ("scale", lambda: MultiScale(HOGFeatures(), (1.0, 0.5)), "svm"),
    "ridge / svm": ("line features", RidgeFeatures, "svm"),
    "ridge / rf": ("line features", RidgeFeatures, "rf"),
    "ridge, sigmas 1-8 / svm": ("line features", lambda: RidgeFeatures(sigmas=(1.0, 2.0, 4.0, 8.0)), "svm"),
    "edges+ridge / svm": ("line features", lambda: _union(EdgeFeatures(), RidgeFeatures()), "svm"),
    "edges+ridge, standardize / svm": ("combination", lambda: _union(Normalized(EdgeFeatures(), "standardize"),
                                                                      RidgeFeatures()), "svm"),
    "edges+ridge, clahe / svm": ("combination", lambda: _union(Normalized(EdgeFeatures(), "clahe"),
                                                                RidgeFeatures()), "svm"),
    "edges+ridge, standardize / rf": ("combination", lambda: _union(Normalized(EdgeFeatures(), "standardize"),
                                                                     RidgeFeatures()), "rf"),
    "lbp+ridge / svm": ("combination", lambda: _union(LBPFeatures(), RidgeFeatures()), "svm"),
    "ridge / svm, train + zoomed-out copies": ("augmentation", RidgeFeatures, "svm", "zoom"),
    "ridge / svm, train + faint copies": ("augmentation", RidgeFeatures, "svm", "faint"),
    "edges+ridge / svm, train + zoomed-out copies": ("augmentation", lambda: _union(EdgeFeatures(), RidgeFeatures()),
                                                     "svm", "zoom"),
    "edges+ridge / svm, train + faint copies": ("augmentation", lambda: _union(EdgeFeatures(), RidgeFeatures()),
                                                "svm", "faint"),
    "edges+ridge / svm, train + zoomed-out faint copies": ("augmentation",
                                                           lambda: _union(EdgeFeatures(), RidgeFeatures()), "svm",
                                                           "zoom+faint"),
    "edges+ridge / rf, train + zoomed-out copies": ("augmentation", lambda: _union(EdgeFeatures(), RidgeFeatures()),
                                                    "rf", "zoom"),
    "edges+ridge / svm, train + zoomed-out copies + line negatives": (
        "hard negatives", lambda: _union(EdgeFeatures(), RidgeFeatures()), "svm", "zoom", "lines"),
    "edges+ridge / rf, train + zoomed-out copies + line negatives": (
        "hard negatives", lambda: _union(EdgeFeatures(), RidgeFeatures()), "rf", "zoom", "lines"),
    "edges+ridge at half size / svm, train + zoomed-out copies": (
        "speed", lambda: _union(EdgeFeatures(), MultiScale(RidgeFeatures(), (0.5,))), "svm", "zoom"),
    "edges+ridge at half size, sigmas 0.5-2 / svm, train + zoomed-out copies": (
        "speed", lambda: _union(EdgeFeatures(), MultiScale(RidgeFeatures(sigmas=(0.5, 1.0, 2.0)), (0.5,))), "svm",
        "zoom"),
}
#: the selection's latency limit: at most this many times the feature time of this variant's family
LATENCY_BASELINE, MAX_LATENCY_RATIO = "edges / svm", 2.0


# registry models trained as `crackbench train` trains them (validation grid, calibration), scored
# like the variants: the rows the README quotes. They take no part in the choice.
MODEL_ROWS = ["edges-svm", "combined-svm", "robust-svm", "robust-rf"]

# name -> crackbench.cnn.train_cnn's options (the model folder is the name's first word)
CNN_VARIANTS = {"cnn (flips, quarter turns)": {"augment": True},
                "cnn-aug (+ colour, blur, noise, JPEG, zoom-out)": {"augment": "field"},
                "cnn-bn (batch-normalised; flips, quarter turns)": {"augment": True, "batch_norm": True}}

# Models adapted to each target without labels: a batch-normalised CNN's normalisation statistics
# (crackbench.cnn.adapt_batch_norm) or an SVM pipeline's feature standardisation
# (crackbench.pipelines.adapt_standardization) taken from the target's unlabelled validation images,
# then scored on that target's validation and test parts. They see target images, so they take no
# part in the choice (trained on the source alone is the rule). name -> the row whose model file
# it adapts
ADAPTED = {"cnn-bn, normalisation adapted to each target's unlabelled validation images": "cnn-bn",
           "robust-svm, standardisation adapted to each target's unlabelled validation images": "robust-svm",
           "edges-svm, standardisation adapted to each target's unlabelled validation images": "edges-svm"}

# Scale matched at test time: a trained model (the registry rows' and the CNN's files) scores an
# image as the highest probability of its tiles of 1/k of its side, half a tile apart, as
# `crackbench scan --tile <side/k>` does for a folder of patches (scans.csv's max_probability).
# Finer cracks than Özgenel's are then seen larger. name -> (model file stem, k)
SCANNED = {f"{stem}, scanned with tiles of {frac} the side": (stem, k)
           for stem in ("edges-svm", "robust-svm", "robust-rf", "cnn") for k, frac in ((1.5, "2/3"), (2.0, "1/2"))}


def _classifier(kind: str, seed: int):
    if kind == "rf":
        return RandomForestClassifier(n_estimators=300, class_weight="balanced", n_jobs=-1, random_state=seed)
    return make_pipeline(StandardScaler(), SVC(C=10.0, gamma="scale", class_weight="balanced", random_state=seed))


def _scores(clf, X) -> np.ndarray:
    """A score whose threshold is the classifier's own: SVM decision 0, forest probability 0.5."""
    if hasattr(clf, "decision_function"):
        return clf.decision_function(X)
    return clf.predict_proba(X)[:, 1] - 0.5


@functools.lru_cache(maxsize=2)  # grey and RGB: decoded once per run, whichever rows ask
def _uav_tiles(folder: Path, tile: int = 128, stride: int = 64, min_fraction: float = 0.002, mode: str = "gray"):
    """Tiles (``mode`` grey or rgb) of every UAV75 photograph with their truth and the photograph's split."""
    from crackbench.scan import read_mask, tile_origins

    splits = pd.read_csv(folder / "splits.csv").set_index("stem")["split"].to_dict()
    tiles, truth, split = [], [], []
    for photo in sorted((folder / "images").iterdir()):
        image = read_image(photo, mode=mode)
        mask = read_mask(next((folder / "masks").glob(photo.stem + ".*")), image.shape[:2])
        for y in tile_origins(image.shape[0], tile, stride):
            for x in tile_origins(image.shape[1], tile, stride):
                tiles.append(image[y:y + tile, x:x + tile])
                truth.append(int(mask[y:y + tile, x:x + tile].mean() >= min_fraction))
                split.append(splits.get(photo.stem, "test"))
    return tiles, np.array(truth), np.array(split)


def feature_ms(extractor, images: list, rounds: int = 3) -> float:
    """Median over ``rounds`` of the mean milliseconds to compute one image's features alone, on
    one thread (how a single image is served); ``images`` are decoded grey patches."""
    from threadpoolctl import threadpool_limits

    times = []
    with threadpool_limits(1):
        extractor.transform(images[:2])  # warm-up (numba, OpenCV)
        for _ in range(rounds):
            start = time.perf_counter()
            for img in images:
                extractor.transform([img])
            times.append((time.perf_counter() - start) / len(images) * 1000)
    return float(np.median(times))


def _features_of_arrays(extractor, images, n_jobs=-1, chunk=256) -> np.ndarray:
    parts = Parallel(n_jobs=n_jobs)(delayed(extractor.transform)(images[i:i + chunk])
                                    for i in range(0, len(images), chunk))
    return np.vstack(parts).astype(np.float32)


def _header(source, targets, uav, seed) -> dict:
    from crackbench import __version__

    return {"crackbench": __version__, "source": str(source), "targets": {k: str(v) for k, v in targets.items()},
            "uav": str(uav) if uav else None, "seed": seed}


def run(source: Path, targets: dict[str, Path], uav: Path | None, out: Path, *, seed: int = 0,
        group_by: str = SDNET_GROUPS, variants: list[str] | None = None, cnn: bool = False,
        progress: bool = True) -> dict:
    from crackbench.manifest import make_manifest, read_manifest

    out.mkdir(parents=True, exist_ok=True)
    cache = out / "feature-cache"
    frames = {}
    for name, folder, groups in [("source", source, None), *((n, d, group_by) for n, d in targets.items())]:
        manifest = out / "splits" / f"{name}.csv"
        if not manifest.is_file():
            make_manifest(folder, manifest, seed=seed, group_by=groups, progress=progress)
        frame = read_manifest(manifest)
        # a target's training part is never used: features only for the parts that choose and report
        frames[name] = frame if name == "source" else frame[frame["split"].isin(["val", "test"])].reset_index(drop=True)
    uav_data = _uav_tiles(uav, mode="gray") if uav is not None else None
    previous = json.loads((out / "transfer.json").read_text()) if (out / "transfer.json").is_file() else {}
    done = {r["variant"]: r for r in previous.get("variants", [])}

    timing_images = [read_image(p, mode="gray") for p in frames["source"]["path"][:100]]
    rows = []
    default = [*VARIANTS, *(CNN_VARIANTS if cnn else []), *MODEL_ROWS,
               *(n for n, (stem, _) in SCANNED.items() if cnn or not stem.startswith("cnn")),
               *(n for n, stem in ADAPTED.items() if cnn or not stem.startswith("cnn"))]
    for name in variants or default:
        if name in done:
            rows.append(done[name])
            continue
        print(f"  {name} ...", file=sys.stderr)
        if name in CNN_VARIANTS:
            rows.append(_cnn_row(name, CNN_VARIANTS[name], frames, out, uav, seed, progress))
        elif name in ADAPTED:
            rows.append(_adapted_row(name, frames, out, uav, timing_images))
        elif name in SCANNED:
            rows.append(_scanned_row(name, frames, out, uav, timing_images, progress))
        elif name in MODEL_ROWS:
            rows.append(_model_row(name, frames, out, uav_data, timing_images, seed, progress))
        else:
            rows.append(_variant_row(name, frames, cache, uav_data, timing_images, seed, progress))
        # after every row: an interrupted run resumes
        write_json(out / "transfer.json", {**_header(source, targets, uav, seed), "variants": rows})
    result = {**_header(source, targets, uav, seed), "variants": rows,
              "sizes": {n: f["split"].value_counts().to_dict() for n, f in frames.items()},
              "uav_tiles": ({p: int((uav_data[2] == p).sum()) for p in ("train", "val", "test")} if uav_data else {})}
    result["chosen"] = choose(result)
    result["chosen_within_latency"] = choose(result, within_latency=True)
    write_json(out / "transfer.json", result)
    return result


def _variant_row(name: str, frames: dict, cache: Path, uav_data, timing_images, seed: int, progress: bool) -> dict:
    """Train feature variant ``name`` on the source's training split and score it."""
    factor, factory, kind, *augment = VARIANTS[name]
    extractor = factory()
    start = time.perf_counter()
    feats = {n: extract(f, extractor, cache_dir=cache, progress=progress) for n, f in frames.items()}
    uav_X = _features_of_arrays(extractor, uav_data[0]) if uav_data else None
    features_s = time.perf_counter() - start
    src = frames["source"]
    train = (src["split"] == "train").to_numpy()
    X_fit, y_fit = feats["source"][train], (src["label"] == "Positive").to_numpy(int)[train]
    start = time.perf_counter()
    X_add, y_add = [], []
    for how in augment:
        if how == "lines":  # hard negatives: sound training images crossed by joint-like lines
            sound = src[train]["path"][y_fit == 0].tolist()
            rng = np.random.default_rng(seed)
            X_add.append(_features_of_arrays(extractor, [_with_lines(read_image(p, mode="gray"), rng) for p in sound]))
            y_add.append(np.zeros(len(sound), int))
        else:  # as pipelines.train_classical does for a spec with `augment`
            X_add.append(extract(src[train], Augmented(extractor, how), cache_dir=cache, progress=progress))
            y_add.append(y_fit)
    X_fit, y_fit = np.vstack([X_fit, *X_add]), np.concatenate([y_fit, *y_add])
    clf = _classifier(kind, seed).fit(X_fit, y_fit)
    fit_s = time.perf_counter() - start
    return {"variant": name, "factor": factor, "classifier": kind, "n_features": int(feats["source"].shape[1]),
            "features_s": features_s, "fit_s": fit_s, "feature_ms": feature_ms(extractor, timing_images),
            **_score_all(frames, {n: _scores(clf, X) for n, X in feats.items()}, uav_data,
                         _scores(clf, uav_X) if uav_data else None)}


def _with_lines(gray: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``gray`` crossed by one or two straight dark lines from border to border, like a joint or a
    formwork line: 2-8 px wide, 20-70 grey levels darker, softly edged; 70% of them within a few
    degrees of horizontal or vertical."""
    import cv2

    h, w = gray.shape
    out = gray.astype(np.float32)
    for _ in range(rng.integers(1, 3)):
        angle = np.radians(rng.choice([0, 90]) + rng.normal(0, 4) if rng.random() < 0.7 else rng.uniform(0, 180))
        centre = np.array([rng.uniform(0.2 * w, 0.8 * w), rng.uniform(0.2 * h, 0.8 * h)])
        reach = np.array([np.cos(angle), np.sin(angle)]) * 2 * max(h, w)
        line = np.zeros_like(out)
        cv2.line(line, tuple(int(v) for v in centre - reach), tuple(int(v) for v in centre + reach), 1.0,
                 int(rng.integers(2, 9)), cv2.LINE_AA)
        out -= cv2.GaussianBlur(line, (0, 0), rng.uniform(0.5, 1.5)) * rng.uniform(20, 70)
    return np.clip(out, 0, 255).astype(np.uint8)


class _Tiled:
    """``extractor`` on every tile of 1/k of an image's side: one image's features as a scanned row
    computes them (for the feature time)."""

    def __init__(self, extractor, k: float):
        self.extractor, self.k = extractor, k

    def transform(self, images):
        return np.vstack([self.extractor.transform(_tiles(im, self.k)) for im in images])


def _tile_side(image: np.ndarray, k: float) -> int:
    return max(1, round(min(image.shape[:2]) / k))


def _tiles(image: np.ndarray, k: float) -> list[np.ndarray]:
    """The tiles :func:`crackbench.scan.scan_image` scores at ``tile=_tile_side(image, k)``."""
    from crackbench.scan import tile_origins

    tile = _tile_side(image, k)
    return [image[y:y + tile, x:x + tile] for y in tile_origins(image.shape[0], tile, max(1, tile // 2))
            for x in tile_origins(image.shape[1], tile, max(1, tile // 2))]


def _row_model(name: str, stem: str, out: Path):
    """The model file the ``stem`` row wrote, which row ``name`` scores another way."""
    from crackbench.registry import load_model

    path = out / "models" / (f"{stem}.keras" if stem.startswith("cnn") else f"{stem}.skops")
    if not path.is_file():
        raise FileNotFoundError(f"{name}: needs {path}, which the {stem!r} row writes: run that row first")
    return load_model(path)


def _scanned_row(name: str, frames: dict, out: Path, uav: Path | None, timing_images, progress: bool) -> dict:
    """Score a trained model's file (its base row's) by scanning each image with tiles of 1/k of its side."""
    from tqdm.auto import tqdm

    from crackbench.model import map_threads, threads_for
    from crackbench.scan import scan_image

    stem, k = SCANNED[name]
    model = _row_model(name, stem, out)

    def one(image) -> float:
        if isinstance(image, str):
            image = read_image(image, mode=model.input_mode)
        return float(scan_image(model, image, tile=_tile_side(image, k), n_jobs=1).probabilities.max())

    def scores(images, what: str) -> np.ndarray:
        it = map_threads(one, images, threads_for(model, None, len(images)))
        return np.fromiter(tqdm(it, total=len(images), desc=f"{stem} scans {what}", disable=not progress),
                           float, len(images)) - 0.5

    start = time.perf_counter()
    out_scores = _val_test_scores(frames, lambda n, part: scores(list(part["path"]), n))
    uav_data = _uav_tiles(uav, mode=model.input_mode) if uav is not None else None
    uav_scores = scores(uav_data[0], "uav75") if uav_data else None
    row = {"variant": name, "factor": "matched scale (test time)", "classifier": stem, "n_features": 0,
           "features_s": 0.0, "fit_s": 0.0, "scan_s": time.perf_counter() - start}
    if not stem.startswith("cnn"):
        row["feature_ms"] = feature_ms(_Tiled(model.pipeline.named_steps["features"], k), timing_images)
    return {**row, **_score_all(frames, out_scores, uav_data, uav_scores)}


def _adapted_row(name: str, frames: dict, out: Path, uav: Path | None, timing_images=None) -> dict:
    """Score a model file adapted, per target, to the target's unlabelled validation images (the
    source is scored by the model as trained)."""
    from crackbench.registry import adapt_model as adapt

    stem = ADAPTED[name]
    model = _row_model(name, stem, out)
    mode = model.input_mode
    start = time.perf_counter()

    def score(n: str, part: pd.DataFrame) -> np.ndarray:
        images = [read_image(p, mode=mode) for p in part["path"]]
        val = (part["split"] == "val").to_numpy()
        site = model if n == "source" else adapt(model, [im for im, v in zip(images, val, strict=True) if v])
        return site.predict_proba(images)[:, 1] - 0.5

    scores = _val_test_scores(frames, score)
    uav_data = _uav_tiles(uav, mode=mode) if uav is not None else None
    uav_scores = None
    if uav_data:
        site = adapt(model, [t for t, part in zip(uav_data[0], uav_data[2], strict=True) if part == "val"])
        uav_scores = site.predict_proba(uav_data[0])[:, 1] - 0.5
    row = {"variant": name, "factor": "unsupervised adaptation (target images, no labels)", "classifier": stem,
           "n_features": 0, "features_s": 0.0, "fit_s": time.perf_counter() - start}
    if not stem.startswith("cnn") and timing_images:  # the model's own features: no time added per image
        row["feature_ms"] = feature_ms(model.pipeline.named_steps["features"], timing_images)
    return {**row, **_score_all(frames, scores, uav_data, uav_scores)}


def _val_test_scores(frames: dict, score) -> dict:
    """Each frame's scores, ``score(name, rows)`` on its val and test rows and NaN elsewhere."""
    out = {}
    for n, frame in frames.items():
        s = np.full(len(frame), np.nan)
        sel = frame["split"].isin(["val", "test"]).to_numpy()
        s[sel] = score(n, frame[sel])
        out[n] = s
    return out


def _score_all(frames: dict, scores: dict, uav_data, uav_scores) -> dict:
    """Source accuracy, targets' balanced accuracy and ROC-AUC (val and test), UAV75 tile ROC-AUC
    and balanced accuracy (val and test), from scores thresholded at 0."""
    row = {}
    for n, frame in frames.items():
        y = (frame["label"] == "Positive").to_numpy(int)
        s = scores[n]
        for part in ("val", "test"):
            sel = (frame["split"] == part).to_numpy()
            if n == "source":
                row[f"source_{part}_accuracy"] = float(accuracy_score(y[sel], s[sel] >= 0))
            else:
                row[f"{n}_{part}_ba"] = float(balanced_accuracy_score(y[sel], s[sel] >= 0))
                row[f"{n}_{part}_auc"] = float(roc_auc_score(y[sel], s[sel]))
        if n == "source":
            continue
        val, test = (frame["split"] == "val").to_numpy(), (frame["split"] == "test").to_numpy()
        # what a user with the target's labelled validation part could do
        row[f"{n}_test_ba_own_threshold"] = float(balanced_accuracy_score(y[test], s[test] >= _best_threshold(
            y[val], s[val])))
        # share of cracked / sound validation images the threshold gets right
        row[f"{n}_val_tpr"] = float((s[val & (y == 1)] >= 0).mean())
        row[f"{n}_val_tnr"] = float((s[val & (y == 0)] < 0).mean())
        # a 95% bootstrap interval for the reported figure (benchmarks.metrics)
        ba = evaluate(y[test], s[test], threshold=0.0)["metrics"]["balanced_accuracy"]
        row[f"{n}_test_ba_ci"] = [ba["ci_low"], ba["ci_high"]]
    if uav_data:
        for part in ("val", "test"):
            sel = uav_data[2] == part
            row[f"uav75_{part}_auc"] = float(roc_auc_score(uav_data[1][sel], uav_scores[sel]))
            row[f"uav75_{part}_ba"] = float(balanced_accuracy_score(uav_data[1][sel], uav_scores[sel] >= 0))
    return row


def _best_threshold(y: np.ndarray, s: np.ndarray) -> float:
    """The score threshold with the highest balanced accuracy on (y, s): midway between neighbours."""
    cuts = np.unique(s)
    cuts = np.concatenate([[cuts[0] - 1], (cuts[:-1] + cuts[1:]) / 2, [cuts[-1] + 1]])
    best = max(cuts, key=lambda c: balanced_accuracy_score(y, s >= c))
    return float(best)


def _cnn_row(name: str, options: dict, frames: dict, out: Path, uav: Path | None, seed: int, progress: bool) -> dict:
    """Train the reference CNN (``options`` of :func:`crackbench.cnn.train_cnn`) on the source's
    split and score it like the feature variants."""
    from crackbench.cnn import save_model, train_cnn

    stem = name.split()[0]
    start = time.perf_counter()
    model = train_cnn(frames["source"], out / "models" / stem, seed=seed, progress=progress, name=stem, **options)
    fit_s = time.perf_counter() - start
    save_model(model, out / "models" / f"{stem}.keras")  # for the scanned and adapted rows
    scores = _val_test_scores(frames, lambda n, part: model.predict_proba(list(part["path"]))[:, 1] - 0.5)
    uav_data = _uav_tiles(uav, mode="rgb") if uav is not None else None
    uav_scores = model.predict_proba(uav_data[0])[:, 1] - 0.5 if uav_data else None
    return {"variant": name, "factor": "cnn", "classifier": name.split()[0], "n_features": 0, "features_s": 0.0,
            "fit_s": fit_s, **_score_all(frames, scores, uav_data, uav_scores)}


def _model_row(name: str, frames: dict, out: Path, uav_data, timing_images, seed: int, progress: bool) -> dict:
    """Train registry model ``name`` on the source's split (as `crackbench train` does) and score it."""
    from crackbench.registry import TrainOptions, train_model

    start = time.perf_counter()
    model = train_model(name, frames["source"], out / "models" / f"{name}.skops",
                        TrainOptions(seed=seed, cache_dir=out / "feature-cache", progress=progress))
    fit_s = time.perf_counter() - start
    scores = {n: model.score(extract(f, model.pipeline.named_steps["features"], cache_dir=out / "feature-cache",
                                     progress=progress)) - 0.5 for n, f in frames.items()}
    uav_scores = model.predict_proba(uav_data[0])[:, 1] - 0.5 if uav_data else None
    return {"variant": name, "factor": "registry model", "classifier": name, "n_features": 0, "features_s": 0.0,
            "fit_s": fit_s, "feature_ms": feature_ms(model.pipeline.named_steps["features"], timing_images),
            **_score_all(frames, scores, uav_data, uav_scores)}


def selection_score(row: dict, targets: list[str]) -> float:
    """Mean of the targets' validation balanced accuracy and the UAV75 validation tile ROC-AUC."""
    parts = [row[f"{t}_val_ba"] for t in targets] + ([row["uav75_val_auc"]] if "uav75_val_auc" in row else [])
    return float(np.mean(parts))


def choose(result: dict, *, within_latency: bool = False) -> str | None:
    """The variant with the best :func:`selection_score` among the feature variants and the scanned
    rows (matched scale) with source validation accuracy >= MIN_SOURCE_VAL; with ``within_latency``,
    only among those whose one-image feature time is at most MAX_LATENCY_RATIO times the
    LATENCY_BASELINE's."""
    targets = list(result["targets"])
    rows = {r["variant"]: r for r in result["variants"]}
    limit = (MAX_LATENCY_RATIO * rows[LATENCY_BASELINE]["feature_ms"] if within_latency and LATENCY_BASELINE in rows
             else float("inf"))
    ok = [r for r in result["variants"] if r["source_val_accuracy"] >= MIN_SOURCE_VAL
          and (r["variant"] in VARIANTS or r["variant"] in SCANNED)
          and r.get("feature_ms", float("inf")) <= limit]
    return max(ok, key=lambda r: selection_score(r, targets))["variant"] if ok else None


def report(result: dict) -> str:
    targets = list(result["targets"])
    lines = [f"Trained on {result['source']} (train split), seed {result['seed']}. Validation columns choose; "
             f"test columns report. BA = balanced accuracy at the classifier's own threshold.", ""]
    head = ["variant", "factor", "source val acc", "source test acc"]
    for t in targets:
        head += [f"{t} val BA", f"{t} test BA", f"{t} test AUC"]
    if result.get("uav"):
        head += ["UAV75 val AUC", "UAV75 test AUC"]
    head += ["selection score", "feature ms / image"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * 2 + "---:|" * (len(head) - 2)]
    for r in result["variants"]:
        mark = " **(chosen)**" if r["variant"] == result.get("chosen") else ""
        if r["variant"] == result.get("chosen_within_latency"):
            mark += f" **(chosen within {MAX_LATENCY_RATIO:g}x the feature time of {LATENCY_BASELINE})**"
        cells = [r["variant"] + mark, r["factor"],
                 f"{r['source_val_accuracy']:.4f}", f"{r['source_test_accuracy']:.4f}"]
        for t in targets:
            cells += [f"{r[f'{t}_val_ba']:.3f}", f"{r[f'{t}_test_ba']:.3f}", f"{r[f'{t}_test_auc']:.3f}"]
        if result.get("uav"):
            cells += [f"{r['uav75_val_auc']:.3f}", f"{r['uav75_test_auc']:.3f}"]
        cells += [f"{selection_score(r, targets):.3f}", f"{r['feature_ms']:.2f}" if "feature_ms" in r else "-"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def figure(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    targets = list(result["targets"])
    rows = result["variants"]
    cols = [(f"{t}_test_ba", f"{t} test BA") for t in targets] + (
        [("uav75_test_auc", "UAV75 test tile AUC")] if result.get("uav") else [])
    fig, ax = plt.subplots(figsize=(9, 0.32 * len(rows) + 1.6))
    y = np.arange(len(rows))
    h = 0.8 / len(cols)
    for i, (key, label) in enumerate(cols):
        ax.barh(y + i * h, [r[key] for r in rows], height=h, label=label)
    def label(r):
        if r["variant"] == result.get("chosen"):
            return r["variant"] + " (chosen)"
        if r["variant"] == result.get("chosen_within_latency"):
            return r["variant"] + f" (chosen within {MAX_LATENCY_RATIO:g}x feature time)"
        return r["variant"]

    ax.set_yticks(y + h * (len(cols) - 1) / 2, [label(r) for r in rows], fontsize=8)
    ax.set_ylim(len(rows) - h, -h)
    ax.axvline(0.5, color="grey", lw=0.8, ls=":")
    ax.axvline(0.8, color="black", lw=0.8, ls="--")
    ax.set_xlim(0.3, 1.0)
    ax.set_xlabel("out-of-domain test score (0.5 = chance; dashed: the 0.80 aim)")
    ax.legend(fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=len(cols), frameon=False)
    title = f"Trained on {Path(result['source']).name} only"
    if any(r["variant"] in ADAPTED for r in rows):
        title += "\n(the adapted rows also saw the target's unlabelled images)"
    ax.set_title(title, fontsize=10, pad=22, loc="right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m crackbench.benchmarks.transfer", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, required=True, help="training dataset folder")
    parser.add_argument("--target", action="append", default=[], metavar="NAME=DIR", help="out-of-domain dataset")
    parser.add_argument("--uav", type=Path, help="a UAV75-style folder (images/, masks/, splits.csv)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--group-by", default=SDNET_GROUPS, help="photo-id regex for the targets' splits")
    parser.add_argument("--variant", action="append", help="run only this variant, CNN variant or registry model "
                        "(repeatable; default: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cnn", action="store_true", help="also train and score the CNN variants (TensorFlow)")
    args = parser.parse_args(argv)
    from .matrix import parse_named

    targets = {k: Path(v) for k, v in parse_named(args.target, "--target").items()}
    for folder in [args.source, *targets.values(), *([args.uav] if args.uav else [])]:
        if not Path(folder).is_dir():
            print(f"error: {folder}: no such folder", file=sys.stderr)
            return 1
    variants = args.variant
    known = [*VARIANTS, *CNN_VARIANTS, *MODEL_ROWS, *SCANNED, *ADAPTED]
    unknown = sorted(set(variants or []) - set(known))
    if unknown:
        print(f"error: unknown variants {unknown}; known: {known}", file=sys.stderr)
        return 1
    result = run(args.source, targets, args.uav, args.out, seed=args.seed, group_by=args.group_by,
                 variants=variants, cnn=args.cnn)
    text = report(result)
    (args.out / "transfer.md").write_text(text)
    figure(result, args.out / "figures" / "transfer.png")
    print(text)
    print(f"chosen on validation data: {result['chosen']}; within {MAX_LATENCY_RATIO:g}x the feature time of "
          f"{LATENCY_BASELINE}: {result['chosen_within_latency']}")
    print(f"wrote {args.out / 'transfer.json'}, {args.out / 'transfer.md'}, {args.out / 'figures' / 'transfer.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
