"""Train a named pipeline on a split manifest: fit on train, choose on val, never look at test.

Policy, the same for every pipeline:

1. Features of the train and val rows are extracted once (through the feature cache, so
   pipelines that share a feature set share the work).
2. Each point of the pipeline's small grid is fitted on **train** and scored (accuracy) on
   **val**; the best fitted candidate is kept as it is. No refit on train+val: the validation
   metrics stay an honest estimate, and the test split is untouched for the benchmark.
3. SVMs produce scores, not probabilities; their scores are calibrated on **val** with a
   sigmoid (Platt) map (``CalibratedClassifierCV(FrozenEstimator(svm))``).
"""

from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd
from joblib import Parallel, delayed, effective_n_jobs
from sklearn.base import clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator
from sklearn.metrics import accuracy_score
from sklearn.model_selection import ParameterGrid
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_limits

from crackbench import __version__
from crackbench.dataset import DataError
from crackbench.features import Augmented, extract
from crackbench.features.batch import _fingerprint
from crackbench.files import exit_with_parent
from crackbench.manifest import read_manifest
from crackbench.model import binary_classes, manifest_sha256, quick_metrics

from .model import ClassicalModel
from .registry import PIPELINES, make_pipeline

__all__ = ["train_classical"]


def _n_workers(n_jobs: int) -> int:
    return max(1, effective_n_jobs(n_jobs))


def _fit_candidate(tail: Pipeline, params: dict, X_train, y_train, X_val, y_val) -> tuple[Pipeline, float]:
    exit_with_parent()
    # One BLAS/LAPACK thread whatever the process: PCA's SVD with two threads rounds differently
    # from one, and the result must not depend on n_jobs (same data + seed -> same model).
    with threadpool_limits(limits=1):
        est = clone(tail).set_params(**params).fit(X_train, y_train)
        return est, float(accuracy_score(y_val, est.predict(X_val)))


def train_classical(
    name: str,
    manifest,
    *,
    seed: int = 0,
    n_jobs: int = -1,
    cache_dir=None,
    positive_class: str | None = None,
    progress: bool = True,
) -> ClassicalModel:
    """Train pipeline ``name`` on a manifest (path or frame); see the module docstring.

    Returns a :class:`ClassicalModel` whose ``metadata`` records the version, pipeline name and
    parameters, classes, manifest sha256, chosen hyperparameters, validation metrics and timings.
    """
    if name not in PIPELINES:
        make_pipeline(name)  # raises the uniform "unknown model" error
    spec = PIPELINES[name]
    if not isinstance(manifest, pd.DataFrame):
        manifest = read_manifest(manifest)
    train = manifest[manifest["split"] == "train"]
    val = manifest[manifest["split"] == "val"]
    if train.empty or val.empty:
        raise DataError(f"training needs non-empty train and val splits, got {len(train)} train and "
                        f"{len(val)} val rows")
    classes = binary_classes(train["label"], positive_class)
    y_train = (train["label"] == classes[1]).to_numpy(int)
    y_val = (val["label"] == classes[1]).to_numpy(int)
    if len(set(y_val)) < 2:
        raise DataError(f"the val split holds only one class ({classes[y_val[0]]}); re-split with more data")

    pipe = make_pipeline(name, random_state=seed, n_jobs=n_jobs)
    adapted = {}
    if spec.pca and len(train) <= spec.pca:
        # PCA keeps at most n_samples - 1 informative components: fewer training images than the
        # pipeline's PCA size would fail inside scikit-learn, so the reduction shrinks with the data
        if len(train) < 3:
            raise DataError(f"{name} needs at least 3 training images (its PCA needs 2 components), got {len(train)}")
        key = "reduce__hog__n_components" if spec.features == "combined" else "reduce__n_components"
        pipe.set_params(**{key: len(train) - 1})
        adapted = {"pca_components": len(train) - 1,
                   "why": f"{len(train)} training images; {spec.pca} components need more than {spec.pca}"}
    timings = {}
    start = time.perf_counter()
    features = extract(pd.concat([train, val]), pipe.named_steps["features"], n_jobs=n_jobs,
                       cache_dir=cache_dir, progress=progress)
    timings["features_s"] = time.perf_counter() - start
    X_train, X_val = features[: len(train)], features[len(train):]
    if spec.augment:  # an augmented copy of every training image, never of val (which chooses)
        start = time.perf_counter()
        X_train = np.vstack([X_train, extract(train, Augmented(pipe.named_steps["features"], spec.augment),
                                              n_jobs=n_jobs, cache_dir=cache_dir, progress=progress)])
        y_train = np.concatenate([y_train, y_train])
        timings["augment_s"] = time.perf_counter() - start

    tail = pipe[1:]
    start = time.perf_counter()
    candidates = list(ParameterGrid(spec.grid))
    fitted = Parallel(n_jobs=1 if spec.classifier == "rf" else min(len(candidates), _n_workers(n_jobs)))(
        delayed(_fit_candidate)(tail, params, X_train, y_train, X_val, y_val) for params in candidates)
    # ties go to the first candidate (grids list simpler models first)
    best_index = int(np.argmax([score for _, score in fitted]))
    tail = fitted[best_index][0]
    timings["fit_s"] = time.perf_counter() - start
    steps = list(tail.steps)
    if spec.calibrated:
        start = time.perf_counter()
        calibrated = CalibratedClassifierCV(FrozenEstimator(steps[-1][1]), method="sigmoid")
        with threadpool_limits(limits=1):
            calibrated.fit(tail[:-1].transform(X_val), y_val)
        steps[-1] = ("clf", calibrated)
        timings["calibrate_s"] = time.perf_counter() - start
    elif hasattr(steps[-1][1], "n_jobs"):
        steps[-1][1].n_jobs = None  # serve single-threaded: thread start-up dominates one image
    model_pipe = Pipeline([("features", pipe.named_steps["features"]), *steps])
    timings["train_s"] = timings["fit_s"] + timings.get("calibrate_s", 0.0)

    val_proba = Pipeline(steps).predict_proba(X_val)[:, 1]
    metadata = {
        "format": "crackbench-model/1",
        "kind": "classical",
        "crackbench_version": __version__,
        "name": name,
        "description": spec.description,
        "params": json.dumps(_fingerprint(model_pipe), sort_keys=True),
        "best_params": candidates[best_index],
        "adapted_to_small_data": adapted,
        "search": [{"params": p, "val_accuracy": score} for p, (_, score) in
                   zip(candidates, fitted, strict=True)],
        "classes": classes,
        "positive_class": classes[1],
        "input": {"decode": "gray", "note": "uint8 grayscale from RGB (BT.601); features resize as set"},
        "manifest_sha256": manifest_sha256(manifest),
        "seed": seed,
        "n_train": len(train),
        "train_augmentation": spec.augment,
        "n_val": len(val),
        "val_metrics": quick_metrics(y_val, val_proba),
        "timings": timings,
    }
    return ClassicalModel(model_pipe, metadata)
