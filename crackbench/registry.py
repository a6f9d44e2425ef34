"""The model registry: every model kind crackbench can train, save, load and benchmark.

One :class:`ModelKind` per name says how to train it (a function in ``crackbench.pipelines`` or
``crackbench.cnn``, with the options it takes), which file suffix its model files use, what it
needs installed, and which options its results depend on. The command line, the benchmark
harness and every other consumer go through :func:`model_kinds`, :func:`train_model` and
:func:`load_model`; adding a model kind is one entry here.

This module sits above ``pipelines`` and ``cnn`` (it imports them only when a model is trained or
loaded, so listing the kinds never loads TensorFlow); nothing below it imports it.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ModelFileError, UsageError
from .model import ImageModel

__all__ = ["FILE_FORMATS", "ModelKind", "TrainOptions", "get_kind", "load_model", "model_kinds", "train_model"]


@dataclass(frozen=True)
class FileFormat:
    """A model file format: the module holding its ``save_model``/``load_model``, and what that
    module needs installed."""

    suffix: str
    module: str
    requires: tuple[str, ...] = ()
    extra: str | None = None


#: Model file formats by suffix.
FILE_FORMATS: dict[str, FileFormat] = {
    ".skops": FileFormat(".skops", "crackbench.pipelines"),
    ".keras": FileFormat(".keras", "crackbench.cnn", requires=("tensorflow", "keras"), extra="cnn"),
}

# Distributions whose versions a result depends on (recorded in the benchmark's resume stamp).
_CORE_LIBRARIES = ("numpy", "scipy", "scikit-learn", "scikit-image", "opencv-python-headless", "opencv-python",
                   "numba", "skops")
_KERAS_LIBRARIES = ("tensorflow", "tensorflow-cpu", "keras")


@dataclass(frozen=True)
class TrainOptions:
    """Every training option a model kind may take; each kind reads the ones it names."""

    seed: int = 0
    n_jobs: int = -1
    cache_dir: str | os.PathLike | None = None
    epochs: int = 30
    image_size: int | None = None
    progress: bool = True


@dataclass(frozen=True)
class ModelKind:
    """One trainable model kind.

    ``trainer`` is ``"module:function"``, called as ``function(manifest=manifest, **trainer_args,
    **{option: TrainOptions.option for option in options}, out_dir=...)`` (``out_dir`` only when
    ``"out_dir"`` is among ``options``) and returning an :class:`~crackbench.model.ImageModel`.
    ``stamp_options`` are the options its results depend on beyond the split, the seed and the
    library versions: a benchmark redoes the model when one of them changes.
    """

    name: str
    description: str
    suffix: str
    trainer: str
    options: tuple[str, ...]
    trainer_args: Mapping[str, object] = field(default_factory=dict)
    stamp_options: tuple[str, ...] = ()

    @property
    def file_format(self) -> FileFormat:
        return FILE_FORMATS[self.suffix]

    @property
    def missing(self) -> list[str]:
        """Modules this kind needs that are not installed (empty when it can run)."""
        return [m for m in self.file_format.requires if importlib.util.find_spec(m) is None]

    @property
    def available(self) -> bool:
        return not self.missing

    def unavailable_reason(self) -> str:
        extra = self.file_format.extra
        return (f"model {self.name!r} needs {', '.join(self.missing)}: "
                f'pip install "crackbench[{extra}]"' if extra else f"model {self.name!r} needs {self.missing}")

    def libraries(self) -> dict[str, str]:
        """Installed versions of the libraries this kind's results depend on."""
        names = _CORE_LIBRARIES + (_KERAS_LIBRARIES if self.suffix == ".keras" else ())
        versions = {}
        for dist in names:
            try:
                versions[dist] = importlib.metadata.version(dist)
            except importlib.metadata.PackageNotFoundError:
                continue
        return versions


def model_kinds() -> dict[str, ModelKind]:
    """Every model kind by name, classical pipelines first, in a stable order."""
    from crackbench.pipelines.registry import PIPELINES

    kinds = {name: ModelKind(name, spec.description, ".skops", "crackbench.pipelines:train_classical",
                             options=("seed", "n_jobs", "cache_dir", "progress"), trainer_args={"name": name})
             for name, spec in PIPELINES.items()}
    kinds["cnn"] = ModelKind(
        "cnn", "reference Keras CNN (Conv16-Pool-Conv32-Pool-Conv32-Pool-Dense256-Dense1)", ".keras",
        "crackbench.cnn:train_cnn", options=("seed", "epochs", "image_size", "progress", "out_dir"),
        stamp_options=("epochs", "image_size"))
    return kinds


def get_kind(name: str) -> ModelKind:
    """The kind called ``name``; a :class:`~crackbench.errors.UsageError` listing the names otherwise."""
    kinds = model_kinds()
    if name not in kinds:
        raise UsageError(f"unknown model {name!r}; expected one of {', '.join(kinds)} (see `crackbench models`)")
    return kinds[name]


def _require(fmt: FileFormat, what: str):
    missing = [m for m in fmt.requires if importlib.util.find_spec(m) is None]
    if missing:
        raise UsageError(f"{what} needs {', '.join(missing)}: pip install \"crackbench[{fmt.extra}]\"")
    return importlib.import_module(fmt.module)


def train_model(name: str, manifest, model_file: str | os.PathLike, options: TrainOptions = TrainOptions(),
                *, work_dir: str | os.PathLike | None = None) -> ImageModel:
    """Train model kind ``name`` on a manifest (path or frame) and save it to ``model_file``.

    ``work_dir`` receives what training writes besides the model (the CNN's logs and curves;
    default: ``model_file`` without its suffix). The model file must carry the kind's suffix.
    Returns the trained model.
    """
    kind = get_kind(name)
    model_file = Path(model_file)
    if model_file.suffix != kind.suffix:
        raise UsageError(f"a {name!r} model file must end in {kind.suffix}, got {model_file.name!r}")
    module = _require(kind.file_format, f"model {name!r}")
    module_name, func = kind.trainer.split(":")
    trainer = getattr(importlib.import_module(module_name), func)
    pool = {"seed": options.seed, "n_jobs": options.n_jobs, "cache_dir": options.cache_dir,
            "epochs": options.epochs, "image_size": options.image_size, "progress": options.progress,
            "out_dir": Path(work_dir) if work_dir is not None else model_file.with_suffix("")}
    model = trainer(manifest=manifest, **kind.trainer_args, **{opt: pool[opt] for opt in kind.options})
    module.save_model(model, model_file)
    return model


def load_model(path: str | os.PathLike) -> ImageModel:
    """A trained model from its file, chosen by suffix (``.skops``, ``.keras``), loaded safely:
    nothing in the file can run code (skops trusted types; Keras ``safe_mode``)."""
    path = Path(path)
    fmt = FILE_FORMATS.get(path.suffix)
    if fmt is None:
        raise ModelFileError(f"{path}: not a crackbench model file; expected one of {', '.join(FILE_FORMATS)}")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: model file not found")
    return _require(fmt, f"reading {path.name}").load_model(path)
