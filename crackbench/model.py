"""What every trained crackbench model offers, classical or CNN: one interface for the CLI and
the benchmark harness.

``predict`` / ``predict_proba`` take a stack ``(n, h, w[, 3])``, a list of image arrays, or a
list of file paths (decoded with :mod:`crackbench.imageio`). ``predict_proba`` returns
``(n, 2)`` probabilities in the order of ``classes_`` = ``[negative_class, positive_class]``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

from .dataset import DataError
from .imageio import DEFAULT_MAX_PIXELS, IMAGE_EXTENSIONS, ImageError, read_image

__all__ = ["ImageModel", "Prediction", "binary_classes", "iter_image_files", "manifest_sha256", "predict_files",
           "quick_metrics"]


class ImageModel:
    """Base class: subclasses set ``metadata`` and implement :meth:`_positive_proba`."""

    #: decode mode for file inputs, "gray" or "rgb"
    input_mode = "rgb"
    metadata: dict

    @property
    def classes_(self) -> list[str]:
        return list(self.metadata["classes"])

    @property
    def positive_class(self) -> str:
        return self.metadata["positive_class"]

    @property
    def name(self) -> str:
        return self.metadata["name"]

    def _positive_proba(self, images: list[np.ndarray]) -> np.ndarray:
        raise NotImplementedError

    def _as_images(self, X) -> list[np.ndarray]:
        if isinstance(X, (str, os.PathLike)):
            raise ValueError("expected a sequence of images or paths; wrap a single path in a list")
        if isinstance(X, np.ndarray):
            return list(X) if X.ndim in (3, 4) else [X]
        items = list(X)
        if not items:
            raise ValueError("expected at least one image, got an empty input")
        return [read_image(x, mode=self.input_mode) if isinstance(x, (str, os.PathLike)) else np.asarray(x)
                for x in items]

    def predict_proba(self, X) -> np.ndarray:
        """``(n, 2)`` class probabilities, columns in ``classes_`` order."""
        p = np.asarray(self._positive_proba(self._as_images(X)), dtype=np.float64)
        return np.column_stack([1.0 - p, p])

    def predict(self, X) -> np.ndarray:
        """Predicted class names (threshold 0.5 on the positive-class probability)."""
        p = self.predict_proba(X)[:, 1]
        return np.where(p >= 0.5, self.classes_[1], self.classes_[0])


@dataclass(frozen=True)
class Prediction:
    path: str
    label: str = ""
    probability: float = float("nan")  # of the positive class
    error: str = ""  # reason code when the file could not be used
    detail: str = ""


def iter_image_files(inputs: Iterable[str | os.PathLike]) -> Iterator[str]:
    """Files given directly, and image files found (recursively, sorted) under given folders."""
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            for f in sorted(p.rglob("*")):
                if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS and not f.name.startswith("."):
                    yield str(f)
        else:
            yield str(p)


def predict_files(model: ImageModel, paths: Sequence[str], *, chunk_size: int = 256,
                  max_pixels: int = DEFAULT_MAX_PIXELS) -> Iterator[Prediction]:
    """Predict file by file in chunks (bounded memory); unusable files yield an ``error`` row."""
    for start in range(0, len(paths), chunk_size):
        chunk = paths[start:start + chunk_size]
        images, ok, failed = [], [], {}
        for p in chunk:
            try:
                images.append(read_image(p, mode=model.input_mode, max_pixels=max_pixels))
                ok.append(p)
            except ImageError as exc:
                failed[p] = exc
        probs = model.predict_proba(images)[:, 1] if images else np.empty(0)
        by_path = dict(zip(ok, probs, strict=True))
        for p in chunk:
            if p in failed:
                yield Prediction(p, error=failed[p].reason, detail=failed[p].detail)
            else:
                prob = float(by_path[p])
                yield Prediction(p, model.classes_[1] if prob >= 0.5 else model.classes_[0], prob)


def binary_classes(labels, positive_class: str | None = None) -> list[str]:
    """``[negative, positive]`` class names; "Positive" is positive unless told otherwise."""
    names = sorted(set(labels))
    if len(names) != 2:
        raise DataError(f"binary classification needs exactly 2 classes in the training data, got "
                        f"{len(names)}: {names}")
    positive = positive_class or ("Positive" if "Positive" in names else None)
    if positive not in names:
        raise DataError(f"cannot tell which class is positive among {names}; pass positive_class")
    return [n for n in names if n != positive] + [positive]


def manifest_sha256(manifest: pd.DataFrame) -> str:
    """sha256 of the manifest file the frame was read from (or of its CSV form)."""
    source = manifest.attrs.get("source")
    if source and os.path.isfile(source):
        with open(source, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    return hashlib.sha256(manifest.to_csv(index=False).encode()).hexdigest()


def quick_metrics(y: np.ndarray, proba: np.ndarray) -> dict:
    """Accuracy, F1 and ROC-AUC of positive-class probabilities (threshold 0.5)."""
    pred = (proba >= 0.5).astype(int)
    auc = roc_auc_score(y, proba) if len(set(y)) == 2 else float("nan")
    return {"accuracy": float(accuracy_score(y, pred)), "f1": float(f1_score(y, pred, zero_division=0)),
            "roc_auc": float(auc)}
