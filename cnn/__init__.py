"""crackbench.cnn: the reference Keras CNN (needs the ``cnn`` extra: ``pip install "crackbench[cnn]"``).

>>> from crackbench.cnn import build_reference_cnn, train_cnn, save_model, load_model
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ start-up chatter out of CLI output

try:
    import keras  # noqa: F401
    import tensorflow  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError('the reference CNN needs TensorFlow: pip install "crackbench[cnn]"') from exc

from .model import (
    DEFAULT_IMAGE_SIZE,
    CNNModel,
    adapt_batch_norm,
    build_reference_cnn,
    check_adaptable,
    load_model,
    save_model,
)
from .training import make_dataset, train_cnn

__all__ = ["DEFAULT_IMAGE_SIZE", "CNNModel", "adapt_batch_norm", "build_reference_cnn", "check_adaptable", "load_model",
           "make_dataset", "save_model", "train_cnn"]
