"""A trained classical pipeline with its metadata, saved and loaded safely with skops."""

from __future__ import annotations

import copy
import functools
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import joblib
import numpy as np
import skops.io as sio
from sklearn import config_context
from sklearn.pipeline import FeatureUnion, Pipeline

from crackbench.errors import ModelFileError
from crackbench.files import atomic_path
from crackbench.model import ImageModel, check_metadata

from ._fast import MAX_ROWS, compile_tail

__all__ = ["TRUSTED_TYPES", "ClassicalModel", "UntrustedModelError", "adapt_standardization", "check_adaptable",
           "load_model", "save_model"]

# Types a crackbench model file may contain beyond skops' own trusted defaults. Exact names only:
# anything else in a file is refused before a single object is constructed.
TRUSTED_TYPES = frozenset({
    "crackbench.features.estimators.HOGFeatures",
    "crackbench.features.estimators.LBPFeatures",
    "crackbench.features.estimators.EdgeFeatures",
    "crackbench.features.estimators.RidgeFeatures",
    "crackbench.features.estimators.Normalized",
    "crackbench.features.estimators.MultiScale",
    "sklearn.frozen._frozen.FrozenEstimator",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.tree._tree.Tree",
})


@functools.cache
def _worker_thread() -> ThreadPoolExecutor | None:
    """One worker thread for half of a FeatureUnion's parts on a few images; ``None`` on one core."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="crackbench-features") if joblib.cpu_count() > 1 \
        else None


class UntrustedModelError(ModelFileError):
    """A model file references types crackbench does not trust; nothing was loaded."""


class ClassicalModel(ImageModel):
    """A fitted :class:`~sklearn.pipeline.Pipeline` (features -> ... -> clf) plus ``metadata``."""

    input_mode = "gray"
    concurrent_batches = True

    def __init__(self, pipeline: Pipeline, metadata: dict):
        self.pipeline = pipeline
        self.metadata = metadata

    def features(self, images: list[np.ndarray]) -> np.ndarray:
        """The feature step's output for ``images``: the same numbers as ``pipeline[0].transform``.

        A FeatureUnion's columns are its parts' columns side by side; computing them directly
        skips its sequential joblib machinery (~0.4 ms per call). For up to ``MAX_ROWS`` images
        the last part is computed on this thread while the others run on one worker thread (the
        kernels release the GIL): for the combined set, edge statistics here, HOG and LBP there,
        about equal halves. Larger batches are parallelised across images by the caller
        (``extract``).
        """
        features = self.pipeline.named_steps["features"]
        if not isinstance(features, FeatureUnion) or features.transformer_weights:
            return features.transform(images)
        parts = [t for _, t in features.transformer_list]
        worker = _worker_thread() if len(images) <= MAX_ROWS and len(parts) > 1 else None
        if worker is None:
            return np.hstack([t.transform(images) for t in parts])
        others = worker.submit(lambda: [t.transform(images) for t in parts[:-1]])
        last = parts[-1].transform(images)
        return np.hstack([*others.result(), last])

    def _positive_proba(self, images: list[np.ndarray]) -> np.ndarray:
        return self.score(self.features(images))

    def score(self, X: np.ndarray) -> np.ndarray:
        """P(positive) from feature rows: the NumPy tail (pipelines._fast) for up to ``MAX_ROWS``
        rows, scikit-learn's ``scale -> reduce -> clf`` otherwise."""
        fast = self._fast_tail() if len(X) <= MAX_ROWS else None
        if fast is not None:
            return fast(X)
        # The features were validated by the extractors and the parameters when the model was
        # trained: skip scikit-learn's repeated finiteness and parameter checks.
        with config_context(assume_finite=True, skip_parameter_validation=True):
            return self.pipeline[1:].predict_proba(X)[:, 1]

    def _fast_tail(self):
        # Built and checked on first use (pipelines._fast), not stored in model files.
        if "_fast" not in vars(self):
            self._fast, why = compile_tail(self.pipeline[1:])
            if why:
                warnings.warn(f"{self.name}: scoring a few images at a time uses scikit-learn's own path "
                              f"(slower per image, same results): {why}", RuntimeWarning, stacklevel=3)
        return self._fast

    def __repr__(self) -> str:
        return f"ClassicalModel({self.metadata.get('name')!r})"


def check_adaptable(model: ClassicalModel) -> None:
    """A ValueError unless ``model``'s pipeline has a fitted StandardScaler to adapt."""
    from sklearn.preprocessing import StandardScaler

    scaler = model.pipeline.named_steps.get("scale")
    if not isinstance(scaler, StandardScaler) or not hasattr(scaler, "scale_"):
        raise ValueError(f"{model.name}: no feature standardisation to adapt (only the SVM pipelines have one)")


def adapt_standardization(model: ClassicalModel, images) -> ClassicalModel:
    """A copy of ``model`` that standardises its features with the statistics of ``images``.

    Unlabelled images of the surface the model will score (a few hundred patches of one site, as
    arrays or paths) give each feature's mean and spread, which replace the training images' in
    the pipeline's StandardScaler: a feature then counts as high or low *for that surface*. This
    is the handcrafted-feature counterpart of adapting a CNN's batch normalisation
    (:func:`crackbench.cnn.adapt_batch_norm`). No label is used and nothing else changes.
    Measured in docs/studies/transfer.md.

    Raises
    ------
    ValueError
        When the pipeline has no fitted StandardScaler (the forests use raw features), or fewer
        than two images are given.
    """
    check_adaptable(model)
    images = model._as_images(images)
    if len(images) < 2:
        raise ValueError(f"adapting the standardisation needs at least two images, got {len(images)}")
    X = np.asarray(model.features(images), np.float64)
    pipeline = copy.deepcopy(model.pipeline)
    adapted = pipeline.named_steps["scale"]
    adapted.mean_, adapted.var_, adapted.n_samples_seen_ = X.mean(axis=0), X.var(axis=0), len(X)
    std = np.sqrt(adapted.var_)
    adapted.scale_ = np.where(std < 10 * np.finfo(np.float64).eps, 1.0, std)  # a constant feature stays as is
    metadata = {**model.metadata, "adapted_standardization": {"n_images": len(images)}}
    return ClassicalModel(pipeline, metadata)


def save_model(model: ClassicalModel, path: str | os.PathLike) -> Path:
    """Write ``model`` to a ``.skops`` file (atomically: a temporary file, then a rename)."""
    path = Path(path)
    if path.suffix != ".skops":
        raise ModelFileError(f"a classical model file must end in .skops, got {path.name!r}")
    with atomic_path(path) as tmp:
        sio.dump({"pipeline": model.pipeline, "metadata": model.metadata}, tmp)
    return path


def load_model(path: str | os.PathLike) -> ClassicalModel:
    """Load a ``.skops`` model file, refusing any type outside skops' defaults and TRUSTED_TYPES.

    Raises
    ------
    UntrustedModelError
        Listing the offending types; no object was built. Never falls back to pickle.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: model file not found")
    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception as exc:  # a zip that is not a skops file, a damaged schema
        raise UntrustedModelError(f"{path}: not a readable skops model file ({type(exc).__name__}: {exc})"
                                  ) from None
    refused = sorted(set(untrusted) - TRUSTED_TYPES)
    if refused:
        raise UntrustedModelError(f"{path}: refusing to load: the file references types that are not "
                                  f"trusted: {', '.join(refused)}")
    try:
        obj = sio.load(path, trusted=untrusted)
    except Exception as exc:  # a damaged file whose type list was readable; nothing in it was run
        raise ModelFileError(f"{path}: not a readable skops model file ({type(exc).__name__}: {exc})") from None
    if not (isinstance(obj, dict) and isinstance(obj.get("pipeline"), Pipeline)):
        raise ModelFileError(f"{path}: a skops file holding a {type(obj).__name__}, not a crackbench model")
    return ClassicalModel(obj["pipeline"], check_metadata(obj.get("metadata"), path))
