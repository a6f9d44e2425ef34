"""A trained classical pipeline with its metadata, saved and loaded safely with skops."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import skops.io as sio
from sklearn import config_context
from sklearn.pipeline import FeatureUnion, Pipeline

from crackbench.model import ImageModel

__all__ = ["TRUSTED_TYPES", "ClassicalModel", "UntrustedModelError", "load_model", "save_model"]

# Types a crackbench model file may contain beyond skops' own trusted defaults. Exact names only:
# anything else in a file is refused before a single object is constructed.
TRUSTED_TYPES = frozenset({
    "crackbench.features.estimators.HOGFeatures",
    "crackbench.features.estimators.LBPFeatures",
    "crackbench.features.estimators.EdgeFeatures",
    "sklearn.frozen._frozen.FrozenEstimator",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.tree._tree.Tree",
})


class UntrustedModelError(ValueError):
    """A model file references types crackbench does not trust; nothing was loaded."""


class ClassicalModel(ImageModel):
    """A fitted :class:`~sklearn.pipeline.Pipeline` (features -> ... -> clf) plus ``metadata``."""

    input_mode = "gray"

    def __init__(self, pipeline: Pipeline, metadata: dict):
        self.pipeline = pipeline
        self.metadata = metadata

    def _positive_proba(self, images: list[np.ndarray]) -> np.ndarray:
        features = self.pipeline.named_steps["features"]
        # Inputs were validated by the extractors and the parameters when the model was trained:
        # skip scikit-learn's repeated finiteness and parameter checks, which dominate one-image
        # latency. A FeatureUnion's columns are its parts' columns side by side; computing them
        # directly skips its sequential joblib machinery (~0.4 ms per call), same numbers.
        with config_context(assume_finite=True, skip_parameter_validation=True):
            if isinstance(features, FeatureUnion) and not features.transformer_weights:
                X = np.hstack([t.transform(images) for _, t in features.transformer_list])
            else:
                X = features.transform(images)
            return self.pipeline[1:].predict_proba(X)[:, 1]

    def __repr__(self) -> str:
        return f"ClassicalModel({self.metadata.get('name')!r})"


def save_model(model: ClassicalModel, path: str | os.PathLike) -> Path:
    """Write ``model`` to a ``.skops`` file (atomically: a temporary file, then a rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    sio.dump({"pipeline": model.pipeline, "metadata": model.metadata}, tmp)
    os.replace(tmp, path)
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
    obj = sio.load(path, trusted=untrusted)
    if not (isinstance(obj, dict) and isinstance(obj.get("pipeline"), Pipeline)
            and isinstance(obj.get("metadata"), dict)):
        raise UntrustedModelError(f"{path}: a skops file, but not a crackbench model")
    return ClassicalModel(obj["pipeline"], obj["metadata"])
