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

__all__ = ["BUILTIN_DIR", "DEFAULT_MODEL", "FILE_FORMATS", "ModelKind", "TrainOptions", "adapt_model", "builtin_models",
           "check_adaptable", "get_kind", "load_model", "model_card", "model_kinds", "render_card", "resolve_model",
           "save_model", "train_model"]


@dataclass(frozen=True)
class FileFormat:
    """A model file format: the module holding its ``save_model``/``load_model``, and what that
    module needs installed."""

    suffix: str
    module: str
    adapter: str  # the module's function adapting a model to unlabelled images (after its check_adaptable)
    requires: tuple[str, ...] = ()
    extra: str | None = None


#: Model file formats by suffix.
FILE_FORMATS: dict[str, FileFormat] = {
    ".skops": FileFormat(".skops", "crackbench.pipelines", "adapt_standardization"),
    ".keras": FileFormat(".keras", "crackbench.cnn", "adapt_batch_norm", requires=("tensorflow", "keras"), extra="cnn"),
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
    model = _require(fmt, f"reading {path.name}").load_model(path)
    model.source = (f"builtin:{path.name.removesuffix(path.suffix)}" if path.resolve().parent == BUILTIN_DIR.resolve()
                    else str(path.resolve()))
    return model


def _format_of(model: ImageModel) -> FileFormat:
    return FILE_FORMATS[".keras" if model.metadata.get("kind") == "cnn" else ".skops"]


def save_model(model: ImageModel, path: str | os.PathLike) -> Path:
    """Write ``model`` to ``path`` in its own format (``.skops`` classical, ``.keras`` CNN)."""
    path, fmt = Path(path), _format_of(model)
    if path.suffix != fmt.suffix:
        raise UsageError(f"a {model.name!r} model file must end in {fmt.suffix}, got {path.name!r}")
    return _require(fmt, f"writing {path.name}").save_model(model, path)


def adapt_model(model: ImageModel, images) -> ImageModel:
    """``model`` adapted, without labels, to ``images`` of the surface it will score (patches at
    the scale of its training images): an SVM pipeline standardises its features with their mean
    and spread (:func:`crackbench.pipelines.adapt_standardization`), a batch-normalised CNN takes
    its normalisation statistics from them (:func:`crackbench.cnn.adapt_batch_norm`). Other
    models (the forests, the reference CNN) have nothing to adapt: a :class:`UsageError` says so."""
    adapt = _adapter(model)
    try:
        return adapt(model, images)
    except ValueError as exc:  # too few images
        raise UsageError(str(exc)) from None


def check_adaptable(model: ImageModel) -> None:
    """A :class:`UsageError` unless :func:`adapt_model` can adapt ``model`` (before any image is read)."""
    _adapter(model)


def _adapter(model: ImageModel):
    fmt = _format_of(model)
    module = _require(fmt, f"adapting {model.name}")
    try:
        module.check_adaptable(model)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return getattr(module, fmt.adapter)


#: Trained models shipped inside the package: ``<name>.skops`` and its model card ``<name>.card.json``,
#: both written by ``python -m crackbench.benchmarks.builtin``.
BUILTIN_DIR = Path(__file__).parent / "models"
#: The built-in model ``predict`` and ``scan`` use when no ``--model`` is given.
DEFAULT_MODEL = "edges-svm"


def builtin_models() -> list[str]:
    """Names of the trained models shipped in the package."""
    return sorted(p.name.removesuffix(".card.json") for p in BUILTIN_DIR.glob("*.card.json"))


def resolve_model(spec: str | os.PathLike | None) -> Path:
    """The model file for ``spec``: a path to a model file, the name of a built-in model, or
    ``None`` for the built-in :data:`DEFAULT_MODEL`."""
    if spec is None or (str(spec) in builtin_models() and not Path(spec).exists()):
        card = model_card(DEFAULT_MODEL if spec is None else str(spec))
        return BUILTIN_DIR / card["file"]
    return Path(spec)


def model_card(name: str) -> dict:
    """The model card of a built-in model (what it was trained on, how it scores in and out of its
    domain, where not to trust it)."""
    import json

    path = BUILTIN_DIR / f"{name}.card.json"
    if not path.is_file():
        shipped = ", ".join(builtin_models()) or "none"
        raise UsageError(f"no built-in model named {name!r} (built-in models: {shipped})")
    return json.loads(path.read_text())


def _fmt(metric: dict) -> str:
    return f"{metric['value']:.4f} [{metric['ci_low']:.4f}, {metric['ci_high']:.4f}]"


def render_card(card: dict) -> str:
    """A model card as Markdown."""
    td, sp = card["training_data"], card["split"]
    lines = [
        f"# Model card: {card['name']} (built in)\n",
        f"{card['description']}. File `crackbench/models/{card['file']}` ({card['file_bytes'] / 2**20:.2f} MiB, "
        f"sha256 `{card['file_sha256'][:16]}`), built with crackbench {card['crackbench_version']} on "
        f"{card['built']} ({card['hardware']}) by\n\n    {card['command']}\n",
        "## Training data and split\n",
        f"- `{td['name']}`: {td['n_images']:,} images used, dataset sha256 `{td['dataset_sha256'][:16]}`; "
        f"{td['not_used']} files of the folder not used (unreadable or unlabelled: `crackbench data audit` "
        f"lists them).",
        f"- Split seed {sp['seed']}, validation {sp['val']:.0%}, test {sp['test']:.0%}, exact duplicates kept in "
        f"one split" + (f", grouped by `{sp['group_by']}`" if sp.get("group_by") else "") + "; counts: "
        + "; ".join(f"{s} " + ", ".join(f"{k} {v}" for k, v in c.items()) for s, c in sp["counts"].items()) + ".",
        f"- Hyper-parameters chosen on the validation split: `{card['params']}`.\n",
        "## Results\n",
        "Patches: accuracy and balanced accuracy at P >= 0.5, with 95% bootstrap intervals; nothing was tuned on "
        "the out-of-domain sets.\n",
        "| evaluated on | images (cracked) | accuracy | balanced accuracy | ROC-AUC |",
        "|---|---:|---|---|---|",
    ]
    for e in card["evaluations"]:
        m = e["metrics"]
        lines.append(f"| {e['name']} | {e['n']:,} ({e['positives']:,}) | {_fmt(m['accuracy'])} | "
                     f"{_fmt(m['balanced_accuracy'])} | {_fmt(m['roc_auc'])} |")
    if card.get("scans"):
        lines += ["", "Whole photographs (`crackbench scan` against pixel crack masks; a tile is cracked when crack "
                  "pixels cover at least the given share of it):\n",
                  "| photos | tile / stride | tile ROC-AUC | average precision | balanced accuracy | "
                  "crack-pixel recall |", "|---|---|---:|---:|---:|---:|"]
        for sc in card["scans"]:
            m = sc["metrics"]
            lines.append(f"| {sc['name']} ({sc['photos']} photos) | {sc['tile']} / {sc['stride']} px, "
                         f">= {sc['min_crack_fraction']:.1%} | {m['roc_auc']:.4f} | {m['average_precision']:.4f} | "
                         f"{m['balanced_accuracy']:.4f} | {m['crack_pixel_recall']:.4f} |")
    lines += ["", "## Where not to trust it\n", *(f"- {line}" for line in card["limits"])]
    return "\n".join(lines) + "\n"
