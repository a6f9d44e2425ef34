"""Train the reference CNN on a split manifest's train/val rows, reproducibly, with callbacks.

Data goes through ``tf.data``: paths -> parallel decode and resize (the same OpenCV decoder and
resize as prediction, :func:`crackbench.cnn.model.resize_batch`) -> ``cache`` -> (train only)
``shuffle`` -> ``batch`` -> ``prefetch``. The split comes from the manifest and never changes:
the original notebook shuffled the whole dataset and then took/skipped, which reshuffles every
epoch and leaks test images into training.

Reproducibility on CPU: ``keras.utils.set_random_seed`` and
``tf.config.experimental.enable_op_determinism()`` make weight initialisation, shuffling and the
CPU kernels deterministic, so the same manifest, seed, TensorFlow build and machine give the same
weights. Different CPUs (instruction sets) or TensorFlow versions may differ in the last bits.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf
from tqdm.auto import tqdm

from crackbench import __version__
from crackbench.dataset import DataError
from crackbench.imageio import read_image
from crackbench.manifest import read_manifest
from crackbench.model import binary_classes, manifest_sha256, quick_metrics

from .model import DEFAULT_IMAGE_SIZE, CNNModel, build_reference_cnn, resize_batch

__all__ = ["make_dataset", "train_cnn", "training_device"]


def training_device() -> str:
    """Where TensorFlow places training: the first GPU's name, else "CPU"."""
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return "CPU"
    details = tf.config.experimental.get_device_details(gpus[0])
    return f"GPU: {details.get('device_name', gpus[0].name)}"


def _augment(image, label, seed):
    """Random flips and quarter turns (a crack is a crack at any orientation), seeded per element."""
    s = tf.random.experimental.stateless_split(seed, 3)
    image = tf.image.stateless_random_flip_left_right(image, s[0])
    image = tf.image.stateless_random_flip_up_down(image, s[1])
    k = tf.random.stateless_uniform([], s[2], minval=0, maxval=4, dtype=tf.int32)
    return tf.image.rot90(image, k), label


def _augment_field(image, label, seed):
    """:func:`_augment`, then what differs between cameras and surfaces, each drawn per image:
    zoom out (shrink to 50-100% of the side, reflect-padded back: cracks look thinner, as from
    farther away), brightness (+-25%), contrast (x0.5-1.5), saturation (x0-1.5: grey to vivid),
    Gaussian blur (sigma 0-1.5 px), sensor noise (sigma 0-8 grey levels) and JPEG quality 30-95."""
    image, label = _augment(image, label, seed)
    s = tf.random.experimental.stateless_split(seed + 1, 8)
    size = tf.shape(image)[0]
    x = tf.cast(image, tf.float32) / 255.0
    side = tf.cast(tf.cast(size, tf.float32) * tf.random.stateless_uniform([], s[0], 0.5, 1.0), tf.int32)
    small = tf.image.resize(x, (side, side), method="area")
    before = (size - side) // 2
    x = tf.pad(small, [[before, size - side - before], [before, size - side - before], [0, 0]], mode="REFLECT")
    x = tf.image.stateless_random_brightness(x, 0.25, s[1])
    x = tf.image.stateless_random_contrast(x, 0.5, 1.5, s[2])
    x = tf.image.stateless_random_saturation(tf.clip_by_value(x, 0.0, 1.0), 0.0, 1.5, s[3])
    sigma = tf.random.stateless_uniform([], s[4], 0.0, 1.5) + 1e-3
    taps = tf.exp(-0.5 * (tf.range(-3.0, 4.0) / sigma) ** 2)
    taps /= tf.reduce_sum(taps)
    kernel = tf.tile((taps[:, None] * taps[None, :])[:, :, None, None], [1, 1, 3, 1])
    x = tf.nn.depthwise_conv2d(tf.pad(x[None], [[0, 0], [3, 3], [3, 3], [0, 0]], mode="REFLECT"), kernel,
                               [1, 1, 1, 1], "VALID")[0]
    noise = tf.random.stateless_uniform([], s[5], 0.0, 8.0 / 255)
    x = x + noise * tf.random.stateless_normal(tf.shape(x), s[6])
    x = tf.image.stateless_random_jpeg_quality(tf.clip_by_value(x, 0.0, 1.0), 30, 95, s[7])
    image = tf.cast(tf.round(tf.clip_by_value(x, 0.0, 1.0) * 255.0), tf.uint8)
    image.set_shape((None, None, 3))
    return image, label


def make_dataset(paths, labels, image_size: int, *, batch_size: int = 32, shuffle: bool = False,
                 augment: bool | str = False, seed: int = 0) -> tf.data.Dataset:
    """``tf.data`` pipeline of (uint8 images, float labels); see the module docstring. With
    ``augment``, each epoch sees every training image under a random flip/quarter turn drawn from
    a seeded stateless generator (reproducible); with ``augment="field"``, also under the
    photometric, blur, noise, JPEG and scale changes of :func:`_augment_field`."""
    def load(path):
        return resize_batch([read_image(path.decode(), mode="rgb")], image_size)[0]

    def load_tf(path, label):
        image = tf.numpy_function(load, [path], tf.uint8, stateful=False)
        image.set_shape((image_size, image_size, 3))
        return image, label

    ds = tf.data.Dataset.from_tensor_slices((np.asarray(paths, str), np.asarray(labels, np.float32)))
    ds = ds.map(load_tf, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).cache()
    if shuffle:
        ds = ds.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    if augment:
        counter = tf.data.Dataset.counter().map(lambda i: tf.stack([tf.cast(i, tf.int64), tf.cast(seed, tf.int64)]))
        fn = _augment_field if augment == "field" else _augment
        ds = tf.data.Dataset.zip((ds, counter)).map(lambda xy, s: fn(xy[0], xy[1], s),
                                                   num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


class _TqdmEpochs(keras.callbacks.Callback):
    """One progress bar over epochs, with the latest metrics."""

    def __init__(self, epochs: int, enabled: bool):
        super().__init__()
        self.bar = tqdm(total=epochs, desc="cnn", unit="epoch", disable=not enabled, leave=False)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        self.bar.set_postfix({k: f"{v:.4f}" for k, v in logs.items() if k in ("loss", "val_loss",
                                                                                "val_accuracy")})
        self.bar.update(1)

    def on_train_end(self, logs=None):
        self.bar.close()


def _plot_history(history: pd.DataFrame, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for ax, metric in zip(axes, ("loss", "accuracy"), strict=True):
        ax.plot(history["epoch"] + 1, history[metric], marker="o", label="train")
        ax.plot(history["epoch"] + 1, history[f"val_{metric}"], marker="o", label="validation")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def train_cnn(
    manifest,
    out_dir: str | os.PathLike,
    *,
    image_size: int | None = None,
    epochs: int = 30,
    batch_size: int = 16,
    patience: int = 3,
    seed: int = 0,
    augment: bool | str = True,
    batch_norm: bool = False,
    learning_rate: float = 3e-4,
    name: str = "cnn",
    positive_class: str | None = None,
    progress: bool = True,
) -> CNNModel:
    """Train :func:`build_reference_cnn` on the manifest's train split, early-stopping on val.

    ``out_dir`` receives ``tensorboard/`` logs, ``history.csv``, ``training_curves.png`` and
    ``checkpoint.keras`` (the lowest-val_loss epoch of the whole run, saved as training goes).
    The learning rate follows a cosine decay from ``learning_rate`` to 0 over ``epochs`` epochs, a
    fixed schedule that val noise cannot cut short. EarlyStopping watches val_loss in the
    schedule's second half (from epoch ``epochs // 2 + 1``, counting from 1, as the metadata
    does), stops after ``patience`` epochs without improvement and restores the best weights of
    that half; the returned model is those weights, and ``metadata["best_epoch"]`` names that
    epoch (``checkpoint.keras`` may hold an earlier one). ``augment`` applies
    random flips and quarter turns to training images (never to val or test); ``"field"`` adds
    colour, blur, noise, JPEG and zoom-out changes (measured in docs/studies/transfer.md:
    it did not help out of domain). ``batch_norm`` trains the batch-normalised variant of the
    architecture (:func:`build_reference_cnn`). ``name`` is the model's name in its metadata. ``learning_rate``
    3e-4 rather than Adam's 1e-3: at 1e-3 the loss spikes and training collapses on the synthetic
    set, and on the real sample it stops lower. Both choices were measured on val (docs/studies/cnn.md).
    """
    image_size = image_size or DEFAULT_IMAGE_SIZE
    if not isinstance(manifest, pd.DataFrame):
        manifest = read_manifest(manifest)
    train = manifest[manifest["split"] == "train"]
    val = manifest[manifest["split"] == "val"]
    if train.empty or val.empty:
        raise DataError(f"training needs non-empty train and val splits, got {len(train)} and {len(val)}")
    classes = binary_classes(train["label"], positive_class)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    y_train = (train["label"] == classes[1]).to_numpy(np.float32)
    y_val = (val["label"] == classes[1]).to_numpy(np.float32)
    train_ds = make_dataset(train["path"], y_train, image_size, batch_size=batch_size, shuffle=True,
                            augment=augment, seed=seed)
    val_ds = make_dataset(val["path"], y_val, image_size, batch_size=batch_size)

    steps = -(-len(train) // batch_size)
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=epochs * steps)
    model = build_reference_cnn((image_size, image_size, 3), learning_rate=schedule, batch_norm=batch_norm)
    stopper = keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True,
                                            start_from_epoch=epochs // 2)
    callbacks = [
        stopper,
        keras.callbacks.ModelCheckpoint(out_dir / "checkpoint.keras", monitor="val_loss", save_best_only=True),
        keras.callbacks.TensorBoard(log_dir=str(out_dir / "tensorboard")),
        keras.callbacks.CSVLogger(str(out_dir / "history.csv")),
        _TqdmEpochs(epochs, progress),
    ]
    start = time.perf_counter()
    fit = model.fit(train_ds, validation_data=val_ds, epochs=epochs, callbacks=callbacks, verbose=0,
                    shuffle=False)  # shuffled by tf.data, seeded
    train_s = time.perf_counter() - start
    history = pd.DataFrame(fit.history).assign(epoch=fit.epoch)
    _plot_history(history, out_dir / "training_curves.png")

    val_proba = model.predict(val_ds, verbose=0).reshape(-1)
    metadata = {
        "format": "crackbench-model/1",
        "kind": "cnn",
        "crackbench_version": __version__,
        "keras_version": keras.__version__,
        "tensorflow_version": tf.__version__,
        "name": name,
        "description": "reference Keras CNN (Conv16-Pool-Conv32-Pool-Conv32-Pool-Dense256-Dense1)"
                       + (", batch-normalised" if batch_norm else "")
                       + (", trained with colour, blur, noise, JPEG and zoom-out augmentation" if augment == "field"
                          else ""),
        "params": {"image_size": image_size, "batch_size": batch_size, "max_epochs": epochs,
                   "patience": patience, "optimizer": "adam", "learning_rate": learning_rate,
                   "schedule": "cosine decay to 0 over max_epochs",
                   "early_stopping_from_epoch": epochs // 2 + 1, "augment": augment, "batch_norm": batch_norm},
        "classes": classes,
        "positive_class": classes[1],
        "input": {"decode": "rgb", "size": image_size,
                  "note": "uint8 RGB resized to size x size (OpenCV area/bilinear); rescaling is in the model"},
        "manifest_sha256": manifest_sha256(manifest),
        "seed": seed,
        "n_train": len(train),
        "n_val": len(val),
        "epochs_run": len(history),
        # the epoch whose weights the model holds: EarlyStopping's best, within the epochs it watched
        "best_epoch": stopper.best_epoch + 1,
        "device": training_device(),
        "val_metrics": quick_metrics(y_val.astype(int), val_proba),
        "timings": {"train_s": train_s, "epoch_s": train_s / max(len(history), 1)},
        "history": history.to_dict(orient="list"),
    }
    return CNNModel(model, metadata)
