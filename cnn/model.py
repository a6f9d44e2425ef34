"""The reference CNN of the notebook crackbench replaces, and its saved-model wrapper."""

from __future__ import annotations

import functools
import json
import os
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import keras
import numpy as np

from crackbench.errors import ModelFileError
from crackbench.files import atomic_path
from crackbench.model import ImageModel, check_metadata

__all__ = ["DEFAULT_IMAGE_SIZE", "CNNModel", "adapt_batch_norm", "build_reference_cnn", "check_adaptable",
           "fully_convolutional", "load_model", "resize_batch", "save_model"]

#: Input side used unless told otherwise; chosen by measurement (docs/studies/cnn.md).
DEFAULT_IMAGE_SIZE = 96
_METADATA_ENTRY = "crackbench.json"


def build_reference_cnn(input_shape: tuple[int, int, int] = (DEFAULT_IMAGE_SIZE, DEFAULT_IMAGE_SIZE, 3),
                        learning_rate: float | keras.optimizers.schedules.LearningRateSchedule = 1e-3,
                        *, batch_norm: bool = False) -> keras.Model:
    """The original notebook's model, compiled: raw uint8 RGB in, P(crack) out.

    Rescaling(1/255) -> Conv2D(16, 3x3, relu) -> MaxPool -> Conv2D(32, 3x3, relu) -> MaxPool ->
    Conv2D(32, 3x3, relu) -> MaxPool -> Flatten -> Dense(256, relu) -> Dense(1, sigmoid);
    Adam, binary cross-entropy. Rescaling lives inside the model, so a saved model takes raw
    images (resized to ``input_shape``). ``batch_norm=True`` builds its batch-normalised variant:
    each convolution and the 256-unit layer without bias, then BatchNormalization, then ReLU.
    """
    def block(layer):
        if not batch_norm:
            return [layer(activation="relu")]
        # momentum 0.9, not Keras's 0.99: the inference statistics settle within tens of steps, so
        # a small training set (a few hundred images) is not scored with half-initial statistics
        return [layer(use_bias=False), keras.layers.BatchNormalization(momentum=0.9), keras.layers.ReLU()]

    model = keras.Sequential([
        keras.Input(shape=input_shape, name="image"),
        keras.layers.Rescaling(1.0 / 255),
        *block(lambda **kw: keras.layers.Conv2D(16, (3, 3), **kw)),
        keras.layers.MaxPooling2D(),
        *block(lambda **kw: keras.layers.Conv2D(32, (3, 3), **kw)),
        keras.layers.MaxPooling2D(),
        *block(lambda **kw: keras.layers.Conv2D(32, (3, 3), **kw)),
        keras.layers.MaxPooling2D(),
        keras.layers.Flatten(),
        *block(lambda **kw: keras.layers.Dense(256, **kw)),
        keras.layers.Dense(1, activation="sigmoid"),
    ], name="reference_cnn_bn" if batch_norm else "reference_cnn")
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

    @functools.cached_property
    def _dense(self) -> _FullyConvolutional | None:
        return fully_convolutional(self.keras_model, self.image_size)

    def grid_geometry(self) -> tuple[int, int] | None:
        """``(input side, pooling step)`` when the network is a stack of unpadded stride-1
        convolutions and non-overlapping poolings under a dense head (the reference CNN: 96, 8),
        else ``None``; see :func:`fully_convolutional`."""
        return None if self._dense is None else (self.image_size, self._dense.step)

    def grid_proba(self, image: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
        """P(crack) of every ``side`` x ``side`` tile of ``image`` (uint8, at the input resolution)
        at origins ``ys`` x ``xs``. The convolutional trunk runs once over bands of the photo and
        each tile whose origin is a multiple of the step reads its own window of the feature map
        (what the trunk computes on that tile alone); the other tiles (a last row or column shifted
        inward to the border) go through trunk and head as crops of their own."""
        dense = self._dense
        if dense is None:
            raise NotImplementedError("this network cannot run fully convolutionally (grid_geometry() is None)")
        side, step = self.image_size, dense.step
        image = np.repeat(image[..., None], 3, axis=-1) if image.ndim == 2 else image
        ys, xs = np.asarray(ys), np.asarray(xs)
        proba = np.full((len(ys), len(xs)), np.nan)
        rows, cols = np.flatnonzero(ys % step == 0), np.flatnonzero(xs % step == 0)
        if len(cols):
            # bands of tile rows, each about 1 MP of input: bounded memory on any photo size
            gap = int(np.diff(ys[rows]).max(initial=step))
            per_band = max(1, (_BAND_PIXELS // image.shape[1] - side) // gap + 1)
            for start in range(0, len(rows), per_band):
                band = rows[start:start + per_band]
                top = int(ys[band[0]])
                maps = np.asarray(dense.trunk(image[None, top:int(ys[band[-1]]) + side]))[0]
                out = dense.out
                windows = np.stack([maps[(ys[i] - top) // step:(ys[i] - top) // step + out, x // step:x // step + out]
                                    for i in band for x in xs[cols]])
                head = np.asarray(dense.head(windows)).reshape(len(band), len(cols))
                proba[np.ix_(band, cols)] = head
        rest = np.argwhere(np.isnan(proba))
        for start in range(0, len(rest), 256):
            chunk = rest[start:start + 256]
            crops = np.stack([image[ys[i]:ys[i] + side, xs[j]:xs[j] + side] for i, j in chunk])
            proba[chunk[:, 0], chunk[:, 1]] = np.asarray(dense.head(np.asarray(dense.trunk(crops)))).reshape(-1)
        return proba

    def __repr__(self) -> str:
        return f"CNNModel({self.metadata.get('name')!r}, size={self.metadata['input']['size']})"


#: Input pixels per band of a fully convolutional scan (the first convolution's output is 16x that in float32).
_BAND_PIXELS = 2 ** 20
_PER_PIXEL_LAYERS = (keras.layers.Rescaling, keras.layers.BatchNormalization, keras.layers.Activation,
                     keras.layers.ReLU, keras.layers.Dropout)


@dataclass(frozen=True)
class _FullyConvolutional:
    trunk: Callable  # the layers before Flatten: uint8 (n, h, w, c) of any size -> feature maps
    head: Callable  # Flatten and what follows: (n, out, out, channels) -> (n, 1)
    step: int  # product of the pooling strides: input pixels per feature-map pixel
    out: int  # side of one tile's feature map


def _compiled(model: keras.Model, shape: tuple, dtype: str) -> Callable:
    """``model`` as one graph for inputs of ``shape`` (``None``: any size), traced once: eager
    calls of a functional model on a whole photo run op by op, 2-3x slower."""
    if keras.backend.backend() != "tensorflow":
        return lambda x: model(x, training=False)
    import tensorflow as tf

    return tf.function(lambda x: model(tf.cast(x, "float32"), training=False),
                       input_signature=[tf.TensorSpec(shape, dtype)])


def fully_convolutional(model: keras.Model, side: int, *, atol: float = 1e-5) -> _FullyConvolutional | None:
    """Split ``model`` (a ``keras.Sequential`` taking ``side`` x ``side`` images) into a trunk
    that runs on whole photos and a head that runs on one tile's window of its output, or
    ``None`` when that would not give each tile what the model computes on it alone.

    The trunk may hold unpadded (``"valid"``) stride-1 convolutions, non-overlapping max/average
    poolings (pool size = stride, unpadded) and per-pixel layers (rescaling, batch
    normalisation, activations, dropout); then one ``Flatten``. A tile whose origin is a multiple
    of every pooling stride's product sees exactly the photo's feature map in its window. The
    split is checked on a probe image (tiles at every aligned origin of a 2x2 grid) against the
    model itself and refused beyond ``atol``.
    """
    if not isinstance(model, keras.Sequential):
        return None
    layers = list(model.layers)
    flat = next((i for i, layer in enumerate(layers) if isinstance(layer, keras.layers.Flatten)), None)
    if flat is None or flat == 0:
        return None
    step = 1
    for layer in layers[:flat]:
        config = layer.get_config()
        if config.get("data_format", "channels_last") != "channels_last":
            return None
        if type(layer) is keras.layers.Conv2D:
            if (config["padding"] != "valid" or tuple(config["strides"]) != (1, 1)
                    or tuple(config["dilation_rate"]) != (1, 1)):
                return None
        elif type(layer) in (keras.layers.MaxPooling2D, keras.layers.AveragePooling2D):
            pool, strides = tuple(config["pool_size"]), tuple(config["strides"])
            if config["padding"] != "valid" or pool != strides or pool[0] != pool[1]:
                return None
            step *= pool[0]
        elif not isinstance(layer, _PER_PIXEL_LAYERS):
            return None
    channels = model.inputs[0].shape[-1]
    image = keras.Input((None, None, channels))
    x = image
    for layer in layers[:flat]:
        x = layer(x)
    trunk = _compiled(keras.Model(image, x, name="trunk"), (None, None, None, channels), "uint8")
    map_shape = tuple(layers[flat].input.shape[1:])
    window = keras.Input(map_shape)
    x = window
    for layer in layers[flat:]:
        x = layer(x)
    head = _compiled(keras.Model(window, x, name="head"), (None, *map_shape), "float32")
    split = _FullyConvolutional(trunk, head, step, int(map_shape[0]))
    # the check: a probe photo of 2x2 aligned tiles, the split against the model on each crop
    probe = np.random.default_rng(0).integers(0, 256, (side + step, side + step, channels), dtype=np.uint8)
    maps = np.asarray(trunk(probe[None]))[0]
    origins = [(0, 0), (0, step), (step, 0), (step, step)]
    got = np.asarray(head(np.stack([maps[y // step:y // step + split.out, x // step:x // step + split.out]
                                    for y, x in origins]))).reshape(-1)
    expected = np.asarray(model.predict_on_batch(np.stack([probe[y:y + side, x:x + side] for y, x in origins])))
    return split if np.allclose(got, expected.reshape(-1), rtol=0, atol=atol) else None


def check_adaptable(model: CNNModel) -> list[int]:
    """The positions of ``model``'s BatchNormalization layers; a ValueError when there is none."""
    layers = model.keras_model.layers
    norms = [i for i, layer in enumerate(layers) if isinstance(layer, keras.layers.BatchNormalization)]
    if not norms:
        raise ValueError(f"{model.name}: no batch normalisation to adapt; train with batch_norm=True")
    return norms


def adapt_batch_norm(model: CNNModel, images, *, batch_size: int = 64) -> CNNModel:
    """A copy of ``model`` whose batch-normalisation statistics are those of ``images``.

    Unlabelled images of the surface the model will score (a few hundred patches of one site)
    stand in for the training images' statistics in every BatchNormalization layer: each layer's
    mean and variance become those of its input over ``images``, with the layers before it
    already adapted (AdaBN: Li et al., "Revisiting batch normalization for practical domain
    adaptation", 2016). No label is used and no weight is trained; the model is otherwise the
    same. Measured in docs/studies/transfer.md.

    Parameters
    ----------
    model : CNNModel
        A batch-normalised CNN (``train_cnn(batch_norm=True)``).
    images : sequence of uint8 arrays
        At least two images, grey or RGB, any size (resized as for prediction).

    Raises
    ------
    ValueError
        When the network has no BatchNormalization layer, or fewer than two images are given.
    """
    norms = check_adaptable(model)
    net = model.keras_model
    if len(images) < 2:
        raise ValueError(f"adapting batch normalisation needs at least two images, got {len(images)}")
    adapted = keras.models.clone_model(net)
    adapted.set_weights(net.get_weights())
    batches = [resize_batch(images[i:i + batch_size], model.image_size) for i in range(0, len(images), batch_size)]
    for k in norms:
        total = squares = count = 0
        for batch in batches:  # the layer's input, every pixel of every image, per channel
            x = batch.astype(np.float32)
            for layer in adapted.layers[:k]:
                x = layer(x, training=False)
            x = np.asarray(x, np.float64).reshape(-1, x.shape[-1])
            total, squares, count = total + x.sum(axis=0), squares + np.square(x).sum(axis=0), count + len(x)
        mean = total / count
        gamma, beta, *_ = adapted.layers[k].get_weights()
        adapted.layers[k].set_weights([gamma, beta, mean, np.maximum(squares / count - mean ** 2, 0.0)])
    metadata = {**model.metadata, "adapted_batch_norm": {"n_images": len(images)},
                "description": model.metadata.get("description", "") + f", batch normalisation adapted to "
                                                                         f"{len(images)} unlabelled images"}
    return CNNModel(adapted, metadata)


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
