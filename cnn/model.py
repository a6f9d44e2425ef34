"""The reference CNN of the notebook crackbench replaces, and its saved-model wrapper."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import cv2
import keras
import numpy as np

from crackbench.errors import ModelFileError
from crackbench.files import atomic_path
from crackbench.model import ImageModel, check_metadata

__all__ = ["DEFAULT_IMAGE_SIZE", "CNNModel", "build_reference_cnn", "load_model", "resize_batch", "save_model"]

#: Input side used unless told otherwise; chosen by measurement (docs/studies/cnn.md).
DEFAULT_IMAGE_SIZE = 96
_METADATA_ENTRY = "crackbench.json"


def build_reference_cnn(input_shape: tuple[int, int, int] = (DEFAULT_IMAGE_SIZE, DEFAULT_IMAGE_SIZE, 3),
                        learning_rate: float | keras.optimizers.schedules.LearningRateSchedule = 1e-3,
                        ) -> keras.Model:
    """The original notebook's model, compiled: raw uint8 RGB in, P(crack) out.

    Rescaling(1/255) -> Conv2D(16, 3x3, relu) -> MaxPool -> Conv2D(32, 3x3, relu) -> MaxPool ->
    Conv2D(32, 3x3, relu) -> MaxPool -> Flatten -> Dense(256, relu) -> Dense(1, sigmoid);
    Adam, binary cross-entropy. Rescaling lives inside the model, so a saved model takes raw
    images (resized to ``input_shape``).
    """
    model = keras.Sequential([
        keras.Input(shape=input_shape, name="image"),
        keras.layers.Rescaling(1.0 / 255),
        keras.layers.Conv2D(16, (3, 3), activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(32, (3, 3), activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(32, (3, 3), activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Flatten(),
        keras.layers.Dense(256, activation="relu"),
        keras.layers.Dense(1, activation="sigmoid"),
    ], name="reference_cnn")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="binary_crossentropy",
                  metrics=["accuracy", keras.metrics.AUC(name="auc")])
    return model


def resize_batch(images: list[np.ndarray], size: int) -> np.ndarray:
    """RGB uint8 ``(n, size, size, 3)``: the one resize used for training and prediction alike
    (OpenCV area interpolation when shrinking, bilinear when enlarging; gray is expanded)."""
    out = np.empty((len(images), size, size, 3), np.uint8)
    for i, img in enumerate(images):
        img = np.asarray(img)
        if img.dtype != np.uint8:
            raise ValueError(f"image {i}: the CNN takes uint8 images, got {img.dtype}")
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=-1)
        if img.ndim != 3 or img.shape[-1] != 3:
            raise ValueError(f"image {i}: expected shape (h, w) or (h, w, 3), got {img.shape}")
        interp = cv2.INTER_AREA if img.shape[0] * img.shape[1] > size * size else cv2.INTER_LINEAR
        out[i] = cv2.resize(img, (size, size), interpolation=interp)
    return out


class CNNModel(ImageModel):
    """A trained Keras model plus crackbench metadata; same interface as classical models."""

    input_mode = "rgb"

    def __init__(self, keras_model: keras.Model, metadata: dict):
        self.keras_model = keras_model
        self.metadata = metadata

    @property
    def image_size(self) -> int:
        return int(self.metadata["input"]["size"])

    def _positive_proba(self, images: list[np.ndarray]) -> np.ndarray:
        batch = resize_batch(images, self.image_size)
        if len(batch) <= 256:  # one call, without predict()'s per-call dataset set-up (latency)
            return np.asarray(self.keras_model.predict_on_batch(batch)).reshape(-1)
        return self.keras_model.predict(batch, batch_size=256, verbose=0).reshape(-1)

    def __repr__(self) -> str:
        return f"CNNModel({self.metadata.get('name')!r}, size={self.metadata['input']['size']})"


def save_model(model: CNNModel, path: str | os.PathLike) -> Path:
    """Write a ``.keras`` file with the metadata inside it (an extra ``crackbench.json`` entry),
    atomically (a temporary file, then a rename)."""
    path = Path(path)
    if path.suffix != ".keras":
        raise ModelFileError(f"a CNN model file must end in .keras, got {path.name!r}")
    with atomic_path(path) as tmp:
        model.keras_model.save(tmp)
        with zipfile.ZipFile(tmp, "a") as z:
            z.writestr(_METADATA_ENTRY, json.dumps(model.metadata, indent=2, sort_keys=True))
    return path


def load_model(path: str | os.PathLike) -> CNNModel:
    """Load a ``.keras`` model saved by :func:`save_model` with ``safe_mode=True``: a file whose
    layers would run arbitrary Python (a ``Lambda`` holding a lambda) is refused."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: model file not found")
    try:
        with zipfile.ZipFile(path) as z:
            metadata = json.loads(z.read(_METADATA_ENTRY))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{path}: not a crackbench CNN model file ({type(exc).__name__})") from None
    check_metadata(metadata, path)
    try:
        keras_model = keras.saving.load_model(path, safe_mode=True, compile=False)
    except ValueError as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ModelFileError(f"{path}: not loaded (Keras, safe mode): {first}") from None
    except Exception as exc:  # a zip without a model, a config naming what cannot be found; nothing ran
        first = (str(exc).strip().splitlines() or [""])[0]
        raise ModelFileError(f"{path}: not a crackbench CNN model file ({type(exc).__name__}: {first})") from None
    return CNNModel(keras_model, metadata)
