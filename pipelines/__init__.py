"""crackbench.pipelines: named scikit-learn baselines, their training, and safe model files.

>>> from crackbench.pipelines import make_pipeline, train_classical, save_model, load_model
"""

from .model import (
    TRUSTED_TYPES,
    ClassicalModel,
    UntrustedModelError,
    adapt_standardization,
    check_adaptable,
    load_model,
    save_model,
)
from .registry import PIPELINES, PipelineSpec, make_pipeline
from .training import train_classical

__all__ = [
    "PIPELINES",
    "TRUSTED_TYPES",
    "ClassicalModel",
    "PipelineSpec",
    "UntrustedModelError",
    "adapt_standardization", "check_adaptable",
    "load_model",
    "make_pipeline",
    "save_model",
    "train_classical",
]
