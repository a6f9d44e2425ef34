"""Crack-relevant edge, gradient, dark-line and intensity statistics of a grayscale image."""

from __future__ import annotations

import itertools

import cv2
import numba
import numpy as np

from ._validation import check_gray

__all__ = ["edge_feature_names", "edge_features"]

# Sobel (3x3) gradient magnitude bin edges, in grey levels per pixel; the last bin is open.
_MAG_EDGES = (0, 8, 16, 32, 64, 128, 256, 512)
_N_ORIENT = 8
_PERCENTILES = (5, 25, 50, 75, 95)


# cos and sin of the orientation-bin boundaries 22.5, 45, ..., 157.5 degrees, as float32
# compile-time constants of the kernel below.
_C0, _C1, _C2, _C3, _C4, _C5, _C6 = (np.float32(np.cos(np.pi * k / 8)) for k in range(1, 8))
_S0, _S1, _S2, _S3, _S4, _S5, _S6 = (np.float32(np.sin(np.pi * k / 8)) for k in range(1, 8))


@numba.njit(cache=True, nogil=True, boundscheck=False)
def _gradient_bins(dx, dy):  # pragma: no cover - compiled
    """Magnitude and unsigned-orientation bin (0..7) of every Sobel gradient.

    The bin is the number of bin boundaries the gradient lies at or beyond: the sign of a cross
    product after folding to [0, 180) degrees, no arctan. float32 is exact here (|g|^2 <= 2^21)
    and the loop vectorises; every operation is correctly rounded, so results do not depend on
    memory alignment (cv2.magnitude's do).
    """
    x = dx.ravel()
    y = dy.ravel()
    n = x.shape[0]
    mag = np.empty(n, np.float32)
    bins = np.empty(n, np.uint8)
    for i in range(n):
        gx = np.float32(x[i])
        gy = np.float32(y[i])
        mag[i] = np.sqrt(gx * gx + gy * gy)
        sign = np.float32(-1.0) if (gy < 0 or (gy == 0 and gx < 0)) else np.float32(1.0)
        fx = gx * sign
        fy = gy * sign
        bins[i] = ((_C0 * fy - _S0 * fx >= 0) + (_C1 * fy - _S1 * fx >= 0) + (_C2 * fy - _S2 * fx >= 0)
                   + (_C3 * fy - _S3 * fx >= 0) + (_C4 * fy - _S4 * fx >= 0)
                   + (_C5 * fy - _S5 * fx >= 0) + (_C6 * fy - _S6 * fx >= 0))
    return mag, bins


@numba.njit(cache=True, nogil=True, boundscheck=False)
def _gradient_stats(dx, dy):  # pragma: no cover - compiled
    """1-level magnitude histogram (bins [k, k+1)), magnitude-weighted orientation histogram, and
    the sums |g| (sequential float64), gx^2, gy^2, gx*gy (exact integers)."""
    mag, bins = _gradient_bins(dx, dy)
    fine = np.zeros((4, 1445), np.int64)  # interleaved partial histograms break store chains
    hist = np.zeros((4, 8))
    s_m = 0.0
    for i in range(mag.shape[0]):
        m = mag[i]
        fine[i & 3, int(m)] += 1
        hist[i & 3, bins[i]] += m
        s_m += m
    x = dx.ravel()
    y = dy.ravel()
    s_xx = 0
    s_yy = 0
    s_xy = 0
    for i in range(x.shape[0]):
        gx = np.int64(x[i])
        gy = np.int64(y[i])
        s_xx += gx * gx
        s_yy += gy * gy
        s_xy += gx * gy
    return (fine.sum(axis=0).astype(np.float64), hist.sum(axis=0), s_m, float(s_xx), float(s_yy),
            float(s_xy))


@numba.njit(cache=True, nogil=True, boundscheck=False)
def _hist_u8(image):  # pragma: no cover - compiled
    """256-bin histogram of a uint8 array (4 interleaved partial histograms break store chains)."""
    x = image.ravel()
    part = np.zeros((4, 256), np.int64)
    for i in range(x.shape[0]):
        part[i & 3, x[i]] += 1
    return part.sum(axis=0)


_LEVELS = np.arange(256, dtype=np.int64)


def _hist_moments(hist: np.ndarray) -> tuple[float, float]:
    """Mean and (population) standard deviation of uint8 data from its histogram, from exact
    integer sums: no accumulation error, whatever the image size."""
    n = int(hist.sum())
    s1 = int(hist @ _LEVELS)
    s2 = int(hist @ (_LEVELS * _LEVELS))
    return s1 / n, float(np.sqrt((n * s2 - s1 * s1) / (n * n)))


def edge_feature_names(canny_thresholds=(60, 120, 240), blackhat_sizes=(7, 15)) -> list[str]:
    """Names of :func:`edge_features`' output, in order, for the same parameters."""
    names = [f"edge_canny_density_t{t}" for t in canny_thresholds]
    names += [f"edge_gradmag_{lo:03d}_{hi:03d}" for lo, hi in itertools.pairwise(_MAG_EDGES)]
    names += [f"edge_gradmag_{_MAG_EDGES[-1]:03d}_inf", "edge_gradmag_mean", "edge_gradmag_p99"]
    names += [f"edge_orient_{round(180 * i / _N_ORIENT):03d}" for i in range(_N_ORIENT)]
    names += ["edge_orient_dominant_frac", "edge_orient_coherence", "edge_laplacian_var"]
    for k in blackhat_sizes:
        names += [f"edge_darkline_k{k}_mean", f"edge_darkline_k{k}_p99", f"edge_darkline_k{k}_frac_t20"]
    names += ["edge_intensity_mean", "edge_intensity_std"]
    names += [f"edge_intensity_p{p:02d}" for p in _PERCENTILES]
    return names


def _hist_percentiles(hist: np.ndarray, qs) -> list[float]:
    """Percentiles (lower value) of uint8 data from its 256-bin histogram."""
    cdf = np.cumsum(hist)
    total = cdf[-1]
    return [float(np.searchsorted(cdf, q / 100.0 * total, side="left")) for q in qs]


def edge_features(image: np.ndarray, canny_thresholds=(60, 120, 240), blackhat_sizes=(7, 15)) -> np.ndarray:
    """Edge and gradient statistics that respond to thin dark cracks.

    Parameters
    ----------
    image : (M, N) uint8 ndarray
        Grayscale image.
    canny_thresholds : sequence of int
        Lower hysteresis thresholds of the Canny detector on the 3x3 Sobel gradients; the upper
        one is twice the lower. Low thresholds (below ~30) make Canny slow on textured concrete.
    blackhat_sizes : sequence of int
        Sides (pixels) of the square structuring elements of the black-hat transform
        (closing minus image), which responds to dark structures thinner than the element.

    Returns
    -------
    features : (n,) ndarray of float64
        Named by :func:`edge_feature_names`, in this order:

        - ``edge_canny_density_t{t}``: fraction of pixels on Canny edges [1]_ at each threshold;
        - ``edge_gradmag_{lo}_{hi}``: fraction of pixels whose 3x3 Sobel gradient magnitude falls in
          [lo, hi) grey levels per pixel, then the mean and 99th percentile (to one grey level)
          of that magnitude;
        - ``edge_orient_{deg}``: magnitude-weighted histogram of unsigned gradient orientation,
          8 bins over [0, 180) degrees, summing to 1; ``edge_orient_dominant_frac`` is its
          largest bin and ``edge_orient_coherence`` the structure-tensor coherence
          ``(l1 - l2) / (l1 + l2)`` of the whole image (1 for one straight direction);
        - ``edge_laplacian_var``: variance of the 3x3 Laplacian (sharpness, fine detail);
        - ``edge_darkline_k{k}_{mean,p99,frac_t20}``: black-hat response, its mean, 99th
          percentile and the fraction of pixels more than 20 grey levels darker than their
          closing (dark-line / ridge evidence);
        - ``edge_intensity_{mean,std,pXX}``: grey-level mean, standard deviation, percentiles.

    References
    ----------
    .. [1] Canny, J., "A Computational Approach to Edge Detection", IEEE Transactions on
           Pattern Analysis and Machine Intelligence, 8(6), 679-698, 1986.
           :DOI:`10.1109/TPAMI.1986.4767851`
    """
    image = check_gray(image)
    n = float(image.size)
    dx = cv2.Sobel(image, cv2.CV_16S, 1, 0, ksize=3)
    dy = cv2.Sobel(image, cv2.CV_16S, 0, 1, ksize=3)
    out = [cv2.countNonZero(cv2.Canny(dx, dy, t, 2 * t)) / n for t in canny_thresholds]

    fine, orient, s_m, jxx, jyy, jxy = _gradient_stats(dx, dy)  # |g| <= 1442.5
    out += list(np.add.reduceat(fine, _MAG_EDGES) / n)
    out += [s_m / n, _hist_percentiles(fine, (99,))[0]]
    total = orient.sum()
    orient = orient / total if total > 0 else orient
    trace = jxx + jyy
    coherence = np.sqrt((jxx - jyy) ** 2 + 4 * jxy * jxy) / trace if trace > 0 else 0.0
    out += [*list(orient), float(orient.max()), float(coherence)]
    out.append(float(cv2.meanStdDev(cv2.Laplacian(image, cv2.CV_32F, ksize=1))[1][0, 0] ** 2))

    for k in blackhat_sizes:
        kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (k, k))
        hist = _hist_u8(cv2.morphologyEx(image, cv2.MORPH_BLACKHAT, kernel))
        out += [_hist_moments(hist)[0], _hist_percentiles(hist, (99,))[0], float(hist[21:].sum() / n)]

    hist = _hist_u8(image)
    out += [*_hist_moments(hist), *_hist_percentiles(hist, _PERCENTILES)]
    return np.asarray(out, dtype=np.float64)
