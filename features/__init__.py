"""crackbench.features: handcrafted image features.

Kernel functions (plain arrays in and out, scikit-image style): :func:`hog`,
:func:`local_binary_pattern`, :func:`edge_features`. scikit-learn transformers wrapping them:
:class:`HOGFeatures`, :class:`LBPFeatures`, :class:`EdgeFeatures`, and :func:`combined_features`
(their FeatureUnion). :func:`extract` runs any of them over files in parallel with a cache.
"""

from ._augment import augment_image
from ._edges import edge_feature_names, edge_features
from ._hog import hog, hog_output_length
from ._lbp import local_binary_pattern
from ._ridge import normalize_image, ridge_feature_names, ridge_features, ridge_response
from .batch import FeatureCache, extract, extractor_key
from .estimators import (
    Augmented,
    EdgeFeatures,
    HOGFeatures,
    LBPFeatures,
    MultiScale,
    Normalized,
    RidgeFeatures,
    combined_features,
    robust_features,
)

FEATURE_SETS = {
    "hog": (HOGFeatures, "Histogram of Oriented Gradients on a 128x128 resize (Dalal & Triggs 2005)"),
    "lbp": (LBPFeatures, "uniform local-binary-pattern histograms, P=8 at radii 1, 2, 3 (Ojala et al. 2002)"),
    "edges": (EdgeFeatures, "Canny density, Sobel magnitude/orientation, dark-line (black-hat), intensity"),
    "combined": (combined_features, "hog + lbp + edges (FeatureUnion)"),
    "ridge": (RidgeFeatures, "multi-scale dark-line (Hessian) strength and line lengths, contrast-normalised"),
    "robust": (robust_features, "edges + ridge (FeatureUnion): chosen for transfer to other surfaces"),
}


def make_feature_set(name: str):
    """A fresh extractor for one of :data:`FEATURE_SETS`' names."""
    try:
        factory = FEATURE_SETS[name][0]
    except KeyError:
        raise ValueError(f"unknown feature set {name!r}; expected one of {sorted(FEATURE_SETS)}") from None
    return factory()


__all__ = [
    "FEATURE_SETS",
    "Augmented",
    "EdgeFeatures",
    "FeatureCache",
    "HOGFeatures",
    "LBPFeatures",
    "MultiScale",
    "Normalized",
    "RidgeFeatures",
    "augment_image",
    "combined_features",
    "edge_feature_names",
    "edge_features",
    "extract",
    "extractor_key",
    "hog",
    "hog_output_length",
    "local_binary_pattern",
    "make_feature_set",
    "normalize_image",
    "ridge_feature_names",
    "ridge_features",
    "ridge_response",
    "robust_features",
]
