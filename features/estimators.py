"""scikit-learn transformers wrapping the feature kernels (modelled on ``PatchExtractor``).

Each takes a stack ``(n, h, w)`` / ``(n, h, w, 3)`` or a list of differently sized images,
learns nothing in ``fit``, and returns a float32 array ``(n, n_features)`` from ``transform``.
"""

from __future__ import annotations

from numbers import Integral

import cv2
import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.pipeline import FeatureUnion
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions

from ._augment import AUGMENTATIONS, augment_image
from ._edges import edge_feature_names, edge_features
from ._hog import hog, hog_output_length
from ._lbp import _padded, lbp_codes, lbp_uniform_hist, local_binary_pattern, n_lbp_codes
from ._ridge import normalize_image, ridge_feature_names, ridge_features
from ._validation import check_images

__all__ = ["Augmented", "EdgeFeatures", "HOGFeatures", "LBPFeatures", "MultiScale", "Normalized", "RidgeFeatures",
           "combined_features", "robust_features"]


class _Stateless(TransformerMixin, BaseEstimator):
    """Learns nothing: ``transform`` works without ``fit`` (as for ``PatchExtractor``); takes images."""

    def __sklearn_is_fitted__(self) -> bool:
        return True

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = True
        return tags


class _ImageFeatures(_Stateless):
    """Shared behaviour: stateless fit, validation, per-image loop, names."""

    def fit(self, X, y=None):
        """Validate parameters and input; nothing is learned. Returns ``self``."""
        self._validate_params()
        check_images(X, image_size=self.image_size)
        return self

    def _check_params_once(self) -> None:
        # Parameter validation costs ~0.1 ms (inspect.signature): once per parameter set, not per
        # call, which matters when one image is predicted at a time.
        params = tuple(sorted((k, repr(v)) for k, v in vars(self).items() if not k.startswith("_")))
        if getattr(self, "_validated_params", None) != params:
            self._validate_params()
            self._validated_params = params

    def transform(self, X) -> np.ndarray:
        """Features of every image, float32 ``(n_images, n_features)``."""
        self._check_params_once()
        images = check_images(X, image_size=self.image_size)
        self._check_sizes(images)
        return np.stack([self._one(img) for img in images]).astype(np.float32, copy=False)

    def _check_sizes(self, images) -> None:
        pass

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        """Readable names of the output columns (``input_features`` is ignored: inputs are pixels)."""
        self._validate_params()
        return np.asarray(self._names(), dtype=object)



class HOGFeatures(_ImageFeatures):
    """Histogram of Oriented Gradients of each image, see :func:`crackbench.features.hog`.

    Parameters
    ----------
    orientations, pixels_per_cell, cells_per_block, block_norm :
        As in :func:`crackbench.features.hog`.
    image_size : (height, width) or None, default (128, 128)
        Resize every image first, so images of any size give the same number of features
        (HOG's length depends on the image size). ``None`` keeps native sizes, which must then
        agree across images.

    Notes
    -----
    The defaults (128x128, 16x16-pixel cells, 2x2-cell blocks: 1,764 features) keep an SVM on
    tens of thousands of images tractable; scikit-image's defaults (8x8 cells, 3x3 blocks) on a
    227x227 patch give 54,756 features.
    """

    _parameter_constraints: dict = {
        "orientations": [Interval(Integral, 1, None, closed="left")],
        "pixels_per_cell": [tuple],
        "cells_per_block": [tuple],
        "block_norm": [StrOptions({"L1", "L1-sqrt", "L2", "L2-Hys"})],
        "image_size": [tuple, None],
    }

    def __init__(self, orientations=9, pixels_per_cell=(16, 16), cells_per_block=(2, 2),
                 block_norm="L2-Hys", image_size=(128, 128)):
        self.orientations = orientations
        self.pixels_per_cell = pixels_per_cell
        self.cells_per_block = cells_per_block
        self.block_norm = block_norm
        self.image_size = image_size

    def _check_sizes(self, images) -> None:
        shapes = {img.shape for img in images}
        if len(shapes) > 1:
            raise ValueError(f"HOGFeatures(image_size=None) needs images of one size, got "
                             f"{sorted(shapes)[:3]}; set image_size=(height, width)")

    def _one(self, img):
        return hog(img, self.orientations, self.pixels_per_cell, self.cells_per_block, self.block_norm)

    def _names(self):
        if self.image_size is None:
            raise ValueError("feature names need a fixed image_size; HOG's length depends on it")
        n = hog_output_length(self.image_size, self.orientations, self.pixels_per_cell,
                              self.cells_per_block)
        return [f"hog_{i:04d}" for i in range(n)]


class LBPFeatures(_ImageFeatures):
    """Normalised histograms of local-binary-pattern labels at several radii (Ojala et al. 2002).

    Parameters
    ----------
    radii : tuple of float, default (1, 2, 3)
        One histogram per radius.
    n_points : int, default 8
        Neighbours sampled on each circle.
    method : {"uniform", "nri_uniform"}, default "uniform"
        ``"uniform"`` gives ``n_points + 2`` rotation-invariant bins per radius,
        ``"nri_uniform"`` ``n_points * (n_points - 1) + 3``. See
        :func:`crackbench.features.local_binary_pattern`.
    image_size : (height, width) or None, default None
        Optional resize; histograms have a fixed length whatever the size.
    """

    _parameter_constraints: dict = {
        "radii": [tuple, list],
        "n_points": [Interval(Integral, 1, 31, closed="both")],
        "method": [StrOptions({"uniform", "nri_uniform"})],
        "image_size": [tuple, None],
    }

    def __init__(self, radii=(1, 2, 3), n_points=8, method="uniform", image_size=None):
        self.radii = radii
        self.n_points = n_points
        self.method = method
        self.image_size = image_size

    def _one(self, img):
        n_bins = n_lbp_codes(self.n_points, self.method)
        padded, pad = _padded(img, max(self.radii))  # one float64 copy serves every radius
        hists = []
        for r in self.radii:
            if self.method == "uniform":
                counts = lbp_uniform_hist(lbp_codes(padded, pad, img.shape, self.n_points, float(r)),
                                          self.n_points)
            else:
                labels = local_binary_pattern(img, self.n_points, r, self.method).astype(np.int64)
                counts = np.bincount(labels.ravel(), minlength=n_bins)
            hists.append(counts / img.size)
        return np.concatenate(hists)

    def _names(self):
        n_bins = n_lbp_codes(self.n_points, self.method)
        tag = "u" if self.method == "uniform" else "n"
        return [f"lbp_r{r:g}_{tag}{k}" for r in self.radii for k in range(n_bins)]


class EdgeFeatures(_ImageFeatures):
    """Edge, gradient, dark-line and intensity statistics, see :func:`crackbench.features.edge_features`.

    Parameters
    ----------
    canny_thresholds : tuple of int, default (60, 120, 240)
    blackhat_sizes : tuple of int, default (7, 15)
    image_size : (height, width) or None, default None
    """

    _parameter_constraints: dict = {
        "canny_thresholds": [tuple, list],
        "blackhat_sizes": [tuple, list],
        "image_size": [tuple, None],
    }

    def __init__(self, canny_thresholds=(60, 120, 240), blackhat_sizes=(7, 15), image_size=None):
        self.canny_thresholds = canny_thresholds
        self.blackhat_sizes = blackhat_sizes
        self.image_size = image_size

    def _one(self, img):
        return edge_features(img, self.canny_thresholds, self.blackhat_sizes)

    def _names(self):
        return edge_feature_names(self.canny_thresholds, self.blackhat_sizes)


class RidgeFeatures(_ImageFeatures):
    """Thin-dark-line evidence independent of brightness, contrast and crack width, see
    :func:`crackbench.features.ridge_features`.

    Parameters
    ----------
    sigmas : tuple of float, default (1.0, 2.0, 4.0)
        Gaussian scales of the line filter; the response is the maximum over them.
    image_size : (height, width) or None, default None
    """

    _parameter_constraints: dict = {
        "sigmas": [tuple, list],
        "image_size": [tuple, None],
    }

    def __init__(self, sigmas=(1.0, 2.0, 4.0), image_size=None):
        self.sigmas = sigmas
        self.image_size = image_size

    def _one(self, img):
        return ridge_features(img, self.sigmas)

    def _names(self):
        return ridge_feature_names()


class _Wrapper(_Stateless):
    """A feature extractor applied to transformed images (stateless, like the extractors)."""

    def fit(self, X, y=None):
        self._validate_params()
        check_images(X)
        return self


class _PerImage(_Wrapper):
    """``features`` of each image after a per-image change (:meth:`_each`); the same columns."""

    def _each(self, img: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def transform(self, X) -> np.ndarray:
        return self.features.transform([self._each(img) for img in check_images(X)])

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        return self.features.get_feature_names_out()


class Normalized(_PerImage):
    """``features`` computed on photometrically normalised images (see
    :func:`crackbench.features.normalize_image`: ``"stretch"``, ``"clahe"`` or ``"standardize"``),
    so that brightness and contrast of a camera or surface do not move the features."""

    _parameter_constraints: dict = {
        "features": [HasMethods(["transform"])],
        "method": [StrOptions({"stretch", "clahe", "standardize"})],
    }

    def __init__(self, features, method="clahe"):
        self.features = features
        self.method = method

    def _each(self, img):
        return normalize_image(img, self.method)


class Augmented(_PerImage):
    """``features`` of augmented copies of the images (:func:`crackbench.features.augment_image`):
    how the classical pipelines add training images that look as from another camera. Used only
    while training; a trained pipeline never augments."""

    _parameter_constraints: dict = {
        "features": [HasMethods(["transform"])],
        "how": [StrOptions(set(AUGMENTATIONS))],
    }

    def __init__(self, features, how="zoom"):
        self.features = features
        self.how = how

    def _each(self, img):
        return augment_image(img, self.how)


class MultiScale(_Wrapper):
    """``features`` of each image at several scales, side by side: at ``0.5`` the image is first
    shrunk to half its size (area averaging), so a crack twice as wide as in training looks as it
    did then. Column names get a ``_s{scale}`` suffix."""

    _parameter_constraints: dict = {
        "features": [HasMethods(["transform"])],
        "scales": [tuple, list],
    }

    def __init__(self, features, scales=(1.0, 0.5)):
        self.features = features
        self.scales = scales

    def transform(self, X) -> np.ndarray:
        images = check_images(X)
        parts = []
        for s in self.scales:
            scaled = images if s == 1 else [
                cv2.resize(img, (max(8, round(img.shape[1] * s)), max(8, round(img.shape[0] * s))),
                           interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR) for img in images]
            parts.append(self.features.transform(scaled))
        return np.hstack(parts).astype(np.float32, copy=False)

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        names = self.features.get_feature_names_out()
        return np.asarray([f"{n}_s{s:g}" for s in self.scales for n in names], dtype=object)


def combined_features(n_jobs: int | None = None) -> FeatureUnion:
    """The default combined feature set: HOG + LBP + edges, with unprefixed column names."""
    return FeatureUnion(
        [("hog", HOGFeatures()), ("lbp", LBPFeatures()), ("edges", EdgeFeatures())],
        n_jobs=n_jobs,
        verbose_feature_names_out=False,
    )



def robust_features(n_jobs: int | None = None) -> FeatureUnion:
    """Edge statistics + ridge (thin dark line) features: the set that transferred best from the
    Özgenel patches to other concrete surfaces among those measured (docs/studies/transfer.md)."""
    return FeatureUnion([("edges", EdgeFeatures()), ("ridge", RidgeFeatures())], n_jobs=n_jobs,
                        verbose_feature_names_out=False)
