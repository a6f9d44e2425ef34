"""Thin-dark-line (ridge) evidence that ignores brightness, contrast, texture level and crack width."""

from __future__ import annotations

import cv2
import numba
import numpy as np

from ._validation import check_gray

__all__ = ["normalize_image", "ridge_feature_names", "ridge_features", "ridge_response"]

_PERCENTILES = (50, 75, 90, 95, 99, 99.5, 99.9)
_THRESHOLDS = (2.0, 4.0, 8.0)
#: A connected ridge component at least this share of the image's longer side long counts as a line.
_LONG = 0.2


def ridge_response(image: np.ndarray, sigmas=(1.0, 2.0, 4.0)) -> np.ndarray:
    """Scale-normalised dark-ridge strength of every pixel, the maximum over ``sigmas``.

    The image is first standardised robustly (minus its median, divided by 1.4826 x its median
    absolute deviation), so the response does not depend on brightness or contrast. At each
    Gaussian scale ``s`` the Hessian's eigenvalues ``l1 >= l2`` give ``s**2 * max(l1 - |l2|, 0)``:
    large across a dark line (valley) of width about ``2 s``, small on blobs, edges and flat
    areas (a Sato-style line measure [1]_). The maximum over scales makes it respond to a hairline
    and to a wide crack alike.

    Parameters
    ----------
    image : (M, N) uint8 ndarray
    sigmas : sequence of float

    Returns
    -------
    response : (M, N) float32 ndarray, >= 0, in units of the image's robust standard deviation

    References
    ----------
    .. [1] Sato, Y. et al., "Three-dimensional multi-scale line filter for segmentation and
           visualization of curvilinear structures in medical images", Medical Image Analysis,
           2(2), 143-168, 1998. :DOI:`10.1016/S1361-8415(98)80009-1`
    """
    image = check_gray(image)
    img = image.astype(np.float32)
    med = float(np.median(img))
    img -= med
    img /= 1.4826 * float(np.median(np.abs(img))) + 1.0
    best = np.zeros(img.shape, np.float32)
    for s in sigmas:
        g = cv2.GaussianBlur(img, (0, 0), float(s), borderType=cv2.BORDER_REFLECT)
        dxx = cv2.Sobel(g, cv2.CV_32F, 2, 0, ksize=3, borderType=cv2.BORDER_REFLECT)
        dyy = cv2.Sobel(g, cv2.CV_32F, 0, 2, ksize=3, borderType=cv2.BORDER_REFLECT)
        dxy = cv2.Sobel(g, cv2.CV_32F, 1, 1, ksize=3, borderType=cv2.BORDER_REFLECT)
        _line_max(dxx, dyy, dxy, np.float32(s * s), best)
    return best


@numba.njit(cache=True, nogil=True, boundscheck=False)
def _line_max(dxx, dyy, dxy, weight, best):
    """``best = max(best, weight * max(l1 - |l2|, 0))`` with ``l1 >= l2`` the Hessian's eigenvalues."""
    for i in range(best.shape[0]):
        for j in range(best.shape[1]):
            half = (dxx[i, j] + dyy[i, j]) * np.float32(0.5)
            d = (dxx[i, j] - dyy[i, j]) * np.float32(0.5)
            root = np.sqrt(d * d + dxy[i, j] * dxy[i, j])
            line = (half + root) - abs(half - root)
            if line > 0:
                line *= weight
                if line > best[i, j]:
                    best[i, j] = line


def _percentiles(values: np.ndarray, qs) -> np.ndarray:
    """Linear-interpolated percentiles from a partial sort (the same definition as NumPy's default)."""
    flat = values.ravel()
    pos = np.asarray(qs, np.float64) / 100 * (flat.size - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, flat.size - 1)
    part = np.partition(flat, np.unique(np.concatenate([lo, hi])))
    return part[lo] + (part[hi] - part[lo]) * (pos - lo)


def ridge_features(image: np.ndarray, sigmas=(1.0, 2.0, 4.0)) -> np.ndarray:
    """Statistics of :func:`ridge_response`: how much line-like dark structure, and how long.

    Returns
    -------
    features : (n,) float64 ndarray, named by :func:`ridge_feature_names`:

    - ``ridge_p{q}``: percentiles of the response;
    - ``ridge_peak_99.9_90``, ``ridge_peak_99_50``: ratios of high to typical percentiles (a
      crack is a few very strong pixels on a weak background; texture raises every percentile);
    - for each threshold ``t`` (2, 4, 8 robust standard deviations): ``ridge_t{t}_frac``, the share of
      pixels above it; ``_longest``, the longest connected component's extent (the longer side of its
      bounding box over the image's longer side); ``_long_frac``, the share of above-threshold pixels
      in components at least 0.2 of the side long; ``_n_long``, how many such components.
    """
    r = ridge_response(image, sigmas)
    p = _percentiles(r, _PERCENTILES)
    out = [*p, p[-1] / (p[2] + 1e-3), p[4] / (p[0] + 1e-3)]
    side = float(max(r.shape))
    for t in _THRESHOLDS:
        mask = (r > t).astype(np.uint8)
        n, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        extent = np.maximum(stats[1:, cv2.CC_STAT_WIDTH], stats[1:, cv2.CC_STAT_HEIGHT]) / side
        area = stats[1:, cv2.CC_STAT_AREA]
        long = extent >= _LONG
        total = float(area.sum())
        out += [total / r.size, float(extent.max()) if n > 1 else 0.0,
                float(area[long].sum()) / total if total else 0.0, float(long.sum())]
    return np.asarray(out, np.float64)


def ridge_feature_names() -> list[str]:
    names = [f"ridge_p{q:g}" for q in _PERCENTILES] + ["ridge_peak_99.9_90", "ridge_peak_99_50"]
    for t in _THRESHOLDS:
        names += [f"ridge_t{t:g}_{k}" for k in ("frac", "longest", "long_frac", "n_long")]
    return names


def normalize_image(image: np.ndarray, method: str) -> np.ndarray:
    """A photometrically normalised copy of a grey uint8 image.

    - ``"stretch"``: the 1st-99th percentile range mapped to 0-255 (contrast stretching);
    - ``"clahe"``: contrast-limited adaptive histogram equalisation (clip 2.0, 4x4 tiles);
    - ``"standardize"``: mean 128 and standard deviation 40, clipped to 0-255.
    """
    image = check_gray(image)
    if method == "stretch":
        lo, hi = np.percentile(image, (1, 99))
        scale = 255.0 / max(hi - lo, 1.0)
        return np.clip((image.astype(np.float32) - lo) * scale, 0, 255).astype(np.uint8)
    if method == "clahe":
        return cv2.createCLAHE(clipLimit=2.0, tileGridSize=(4, 4)).apply(np.ascontiguousarray(image))
    if method == "standardize":
        img = image.astype(np.float32)
        return np.clip((img - img.mean()) * (40.0 / (img.std() + 1e-3)) + 128, 0, 255).astype(np.uint8)
    raise ValueError(f"unknown normalisation {method!r}; expected stretch, clahe or standardize")
