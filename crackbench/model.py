"""What every trained crackbench model offers, classical or CNN: one interface for the CLI, the
benchmark harness and every other consumer.

``predict`` / ``predict_proba`` take a stack ``(n, h, w[, 3])``, a list of image arrays, or a
list of file paths (decoded with :mod:`crackbench.imageio`). ``predict_proba`` returns
``(n, 2)`` probabilities in the order of ``classes_`` = ``[negative_class, positive_class]``.
"""

from __future__ import annotations

import hashlib
import os
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal, TypedDict

import joblib
import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

from .dataset import DataError
from .errors import ModelFileError
from .imageio import DEFAULT_MAX_PIXELS, IMAGE_EXTENSIONS, ImageError, read_image

__all__ = ["ImageModel", "ModelMetadata", "Prediction", "binary_classes", "check_metadata", "iter_image_files",
           "manifest_sha256", "predict_files", "quick_metrics"]


class _OptionalMetadata(TypedDict, total=False):
    device: str  # where it was trained: "CPU" or the accelerator's name
    params: dict | str
    best_params: dict


class ModelMetadata(_OptionalMetadata):
    """What a model file records beside the fitted model (JSON-able, stored inside the file);
    ``device``, ``params`` and ``best_params`` may be absent."""

    format: str  # "crackbench-model/1"
    kind: str  # the model's family: "classical" | "cnn"
    name: str  # its name in the model registry (``crackbench models``)
    description: str
    crackbench_version: str
    classes: list[str]  # [negative, positive]
    positive_class: str
    input: dict  # how files are decoded and resized before the model
    manifest_sha256: str  # the split it was trained on
    seed: int
    n_train: int
    n_val: int
    val_metrics: dict[str, float]  # accuracy, f1, roc_auc on the val split
    timings: dict[str, float]  # seconds; "train_s" is the fitting time


def check_metadata(metadata, path) -> ModelMetadata:
    """``metadata`` if it holds every key of :class:`ModelMetadata` a model needs; otherwise a
    :class:`~crackbench.errors.ModelFileError` naming the file and what is missing."""
    if not isinstance(metadata, dict):
        raise ModelFileError(f"{path}: not a crackbench model file (no metadata)")
    missing = sorted(ModelMetadata.__required_keys__ - set(metadata))
    if missing:
        raise ModelFileError(f"{path}: not a crackbench model file (metadata without {', '.join(missing)})")
    classes = metadata["classes"]
    if not (isinstance(classes, list) and len(classes) == 2 and metadata["positive_class"] == classes[1]):
        raise ModelFileError(f"{path}: not a crackbench model file (classes {classes!r} are not "
                             f"[negative, positive])")
    return metadata


class ImageModel(ABC):
    """A trained binary image classifier with its :class:`ModelMetadata`.

    Subclasses set ``input_mode`` (how files are decoded) and ``metadata``, and implement
    :meth:`_positive_proba` on a list of decoded images.
    """

    input_mode: ClassVar[Literal["gray", "rgb"]] = "rgb"
    #: True when ``predict_proba`` may run on several threads at once, each batch on one core (the
    #: classical kernels release the GIL); a model that parallelises each call itself leaves it False.
    concurrent_batches: ClassVar[bool] = False
    metadata: ModelMetadata
    #: Where the model was loaded from (``"builtin:NAME"`` or the file's absolute path), set by
    #: :func:`crackbench.registry.load_model`; Dask workers load their own copy from it.
    source: str | None = None

    @property
    def classes_(self) -> list[str]:
        return list(self.metadata["classes"])

    @property
    def positive_class(self) -> str:
        return self.metadata["positive_class"]

    @property
    def name(self) -> str:
        return self.metadata["name"]

    @abstractmethod
    def _positive_proba(self, images: list[np.ndarray]) -> np.ndarray:
        """P(positive class) for each decoded image, shape ``(n,)``."""

    def grid_geometry(self) -> tuple[int, int] | None:
        """``(side, step)`` when the model can score a whole grid of overlapping tiles of a photo
        at once, sharing the work of their overlaps (a CNN run fully convolutionally): ``side``
        is the tile side it takes, in pixels of its input, and tile origins must be multiples of
        ``step`` for the sharing. ``None`` (the default): it scores tiles one by one."""
        return None

    def grid_proba(self, image: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
        """P(positive class) of the ``side`` x ``side`` tile at every ``(ys[i], xs[j])`` of
        ``image`` (already at the model's input resolution), shape ``(len(ys), len(xs))``; only
        for a model whose :meth:`grid_geometry` is not ``None``."""
        raise NotImplementedError(f"{type(self).__name__} scores tiles one by one (grid_geometry() is None)")

    def _as_images(self, X) -> list[np.ndarray]:
        if isinstance(X, (str, os.PathLike)):
            raise ValueError("expected a sequence of images or paths; wrap a single path in a list")
        if isinstance(X, np.ndarray):
            if X.ndim == 4 or (X.ndim == 3 and X.shape[-1] not in (3, 4)):
                return list(X)
            hint = ("; for one image pass X[np.newaxis]" if X.ndim in (2, 3) else "")
            raise ValueError(f"expected images of shape (n, h, w) or (n, h, w, 3), got {X.shape}{hint}")
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
    """Paths given directly, and every non-hidden entry with an image extension found below given
    folders (depth first, in name order), whatever it is: a named pipe, a broken link or an
    unreadable file is yielded too, so the caller reports it. A folder that cannot be listed is
    yielded itself. Linked folders are followed once; a link back to a folder already walked (a
    loop) is not followed."""
    for item in inputs:
        p = Path(item)
        if not p.is_dir():
            yield str(p)
            continue
        yield from _walk_images(str(p), set())


def _walk_images(folder: str, seen: set[str]) -> Iterator[str]:
    seen.add(os.path.realpath(folder))
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        yield folder
        return
    for e in entries:
        if e.name.startswith("."):
            continue
        try:
            is_dir = e.is_dir()
        except OSError:
            is_dir = False
        if is_dir:
            if os.path.realpath(e.path) not in seen:
                yield from _walk_images(e.path, seen)
        elif Path(e.name).suffix.lower() in IMAGE_EXTENSIONS:
            yield e.path


#: Decoded bytes one chunk of :func:`predict_files` may hold (a chunk also stops at chunk_size files).
CHUNK_BYTES = 512 * 2**20


def predict_files(model: ImageModel, paths: Sequence[str], *, chunk_size: int = 256,
                  max_pixels: int = DEFAULT_MAX_PIXELS, max_bytes: int = CHUNK_BYTES,
                  n_jobs: int | None = None) -> Iterator[Prediction]:
    """Predict file by file in chunks, in input order; every path yields one row, and an unusable
    file yields an ``error`` row with its reason. A chunk holds at most ``chunk_size`` files and
    about ``max_bytes`` of decoded pixels (one image above it is predicted alone), so memory stays
    bounded whatever the image sizes.

    ``n_jobs`` chunks are decoded and predicted at once, on threads (default: one per core for a
    model whose batches can run side by side, ``model.concurrent_batches``, else 1), sharing
    ``max_bytes`` between them; the rows do not depend on it.

    Inside a :func:`crackbench.cluster.connect` block the files are read and predicted by the Dask
    workers, in chunks, each worker loading the model once from ``model.source``; the rows are the
    same, in the same order."""
    from .cluster import active_client

    client = active_client()
    if client is not None and len(paths):
        from .cluster import predict_on_cluster

        yield from predict_on_cluster(client, model, paths, max_pixels=max_pixels)
        return
    groups = [paths[i:i + chunk_size] for i in range(0, len(paths), chunk_size)]
    workers = threads_for(model, n_jobs, len(groups))
    # each running chunk holds its own images only: the threads share the byte budget
    for rows in map_threads(lambda group: list(_predict_chunk(model, group, max_pixels, max_bytes // workers)),
                            groups, workers):
        yield from rows


def threads_for(model: ImageModel, n_jobs: int | None, n_tasks: int) -> int:
    """Threads to run ``n_tasks`` pieces of ``model``'s work on: ``n_jobs``, else one per core for a
    model whose batches can run side by side (``model.concurrent_batches``), else 1; at most one
    per task."""
    return max(1, min(n_jobs or (joblib.cpu_count() if model.concurrent_batches else 1), n_tasks))


def map_threads(fn, items: Iterable, workers: int) -> Iterator:
    """``fn(item)`` for each item, yielded in input order. With ``workers`` > 1 they run on that many
    threads, each with one BLAS thread (BLAS pools spinning beside them would take their cores),
    and at most two items per thread are submitted and not yet yielded, so finished results do not
    pile up behind a slow one; with 1, in this thread."""
    if workers <= 1:
        yield from map(fn, items)
        return
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1), ThreadPoolExecutor(workers, thread_name_prefix="crackbench") as pool:
        pending: deque = deque()
        for item in items:
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
            pending.append(pool.submit(fn, item))
        while pending:
            yield pending.popleft().result()


def _predict_chunk(model: ImageModel, paths: Sequence[str], max_pixels: int, max_bytes: int) -> Iterator[Prediction]:
    """Rows for ``paths`` (at most one chunk of files), predicted in batches of at most ``max_bytes``
    of decoded pixels."""
    pending: list[tuple[str, np.ndarray | ImageError]] = []
    held = 0

    def flush() -> Iterator[Prediction]:
        images = [x for _, x in pending if not isinstance(x, ImageError)]
        probs = iter(model.predict_proba(images)[:, 1] if images else [])
        for p, x in pending:
            if isinstance(x, ImageError):
                yield Prediction(p, error=x.reason, detail=x.detail)
            else:
                prob = float(next(probs))
                yield Prediction(p, model.classes_[1] if prob >= 0.5 else model.classes_[0], prob)
        pending.clear()

    for p in paths:
        try:
            image = read_image(p, mode=model.input_mode, max_pixels=max_pixels)
        except ImageError as exc:
            pending.append((p, exc))
            continue
        if pending and held + image.nbytes > max_bytes:
            yield from flush()
            held = 0
        pending.append((p, image))
        held += image.nbytes
    yield from flush()


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
