"""Local binary patterns with scikit-image's exact codes and a vectorised compiled kernel."""

from __future__ import annotations

import math
import warnings
from functools import lru_cache

import numba
import numpy as np

__all__ = ["local_binary_pattern", "n_lbp_codes"]

METHODS = ("default", "ror", "uniform", "nri_uniform", "var")
_MAX_P = 31


@numba.njit(cache=True, nogil=True, boundscheck=False)
def _sample_bits(padded, pad, rows, cols, on_grid, roff0, roff1, dr, coff0, coff1, dc,
                 codes):  # pragma: no cover - compiled
    """codes[r, c] |= (sample_i >= centre) << i for every sample point i.

    Sample values use the exact expression and operation order of scikit-image's
    ``bilinear_interpolation`` in float64, so every comparison, ties included, comes out the
    same; the inner loop runs over contiguous row slices and vectorises.
    """
    n_points = roff0.shape[0]
    for r in range(rows):
        code = codes[r]
        code[:] = 0
        crow = padded[r + pad, pad:pad + cols]
        for i in range(n_points):
            v = dr[i, r]
            ra = padded[r + pad + roff0[i]]
            rb = padded[r + pad + roff1[i]]
            e = pad + coff0[i]
            f = pad + coff1[i]
            ta = ra[e:e + cols]
            tb = ra[f:f + cols]
            ba = rb[e:e + cols]
            bb = rb[f:f + cols]
            wr = dc[i]
            sh = np.uint32(i)
            if on_grid[i]:  # integer offset: the interpolation is the pixel itself, exactly
                for c in range(cols):
                    code[c] |= np.uint32(ta[c] >= crow[c]) << sh
                continue
            for c in range(cols):
                w = wr[c]
                top = (1 - w) * ta[c] + w * tb[c]
                bottom = (1 - w) * ba[c] + w * bb[c]
                val = (1 - v) * top + v * bottom
                code[c] |= np.uint32(val >= crow[c]) << sh


@numba.njit(cache=True, nogil=True, boundscheck=False)
def _sample_var(padded, pad, rows, cols, roff0, roff1, dr, coff0, coff1, dc, out):  # pragma: no cover
    """Variance of the interpolated samples around each pixel (``np.var`` of the texture)."""
    n_points = roff0.shape[0]
    tex = np.empty(n_points)
    for r in range(rows):
        for c in range(cols):
            for i in range(n_points):
                v = dr[i, r]
                w = dc[i, c]
                a = r + pad + roff0[i]
                b = r + pad + roff1[i]
                e = c + pad + coff0[i]
                f = c + pad + coff1[i]
                top = (1 - w) * padded[a, e] + w * padded[a, f]
                bottom = (1 - w) * padded[b, e] + w * padded[b, f]
                tex[i] = (1 - v) * top + v * bottom
            var = np.var(tex)
            out[r, c] = var if var != 0 else np.nan  # as scikit-image: no contrast, no value


@numba.njit(cache=True, nogil=True, inline="always")
def _popcount(x):  # pragma: no cover - compiled; SWAR popcount of a 32-bit value
    x = x - ((x >> 1) & 0x55555555)
    x = (x & 0x33333333) + ((x >> 2) & 0x33333333)
    x = (x + (x >> 4)) & 0x0F0F0F0F
    return ((x * 0x01010101) & 0xFFFFFFFF) >> 24


@numba.njit(cache=True, nogil=True, boundscheck=False)
def _uniform(codes, n_points, out):  # pragma: no cover - compiled
    """'uniform' labels: set bits if at most 2 transitions (no wrap, as scikit-image), else P + 1."""
    mask = np.int64((1 << (n_points - 1)) - 1)
    flat_in = codes.ravel()
    flat_out = out.ravel()
    for k in range(flat_in.shape[0]):
        code = np.int64(flat_in[k])
        changes = _popcount((code ^ (code >> 1)) & mask)
        flat_out[k] = _popcount(code) if changes <= 2 else n_points + 1


@numba.njit(cache=True, nogil=True, boundscheck=False)
def _uniform_hist(codes, n_points):  # pragma: no cover - compiled
    """Histogram (counts) of 'uniform' labels straight from raw codes.

    Four interleaved partial histograms: neighbouring pixels mostly share a label, and a single
    histogram would serialise on that one counter."""
    mask = np.int64((1 << (n_points - 1)) - 1)
    hist = np.zeros((4, n_points + 2), np.int64)
    flat = codes.ravel()
    for k in range(flat.shape[0]):
        code = np.int64(flat[k])
        changes = _popcount((code ^ (code >> 1)) & mask)
        hist[k & 3, _popcount(code) if changes <= 2 else n_points + 1] += 1
    return hist.sum(axis=0).astype(np.float64)


@numba.njit(cache=True, nogil=True)
def _relabel(codes, n_points, method, out):  # pragma: no cover - compiled
    """Map raw P-bit codes to scikit-image's 'ror' (method 1) or 'nri_uniform' (method 3) labels
    ('uniform' has its own kernel, :func:`lbp_uniform`)."""
    P = n_points
    full = (1 << P) - 1
    rows, cols = codes.shape
    for r in range(rows):
        for c in range(cols):
            code = np.int64(codes[r, c])
            if method == 1:  # ror: smallest right rotation
                best = code
                x = code
                for _ in range(1, P):
                    x = (x >> 1) | ((x & 1) << (P - 1))
                    if x < best:
                        best = x
                out[r, c] = best
                continue
            # transitions between neighbouring samples, not wrapping from P-1 to 0 (as scikit-image)
            changes = 0
            ones = 0
            first_one = -1
            first_zero = -1
            for i in range(P):
                bit = (code >> i) & 1
                if i < P - 1 and bit != ((code >> (i + 1)) & 1):
                    changes += 1
                if bit:
                    ones += 1
                    if first_one < 0:
                        first_one = i
                elif first_zero < 0:
                    first_zero = i
            if changes > 2:  # nri_uniform, non-uniform pattern
                out[r, c] = P * (P - 1) + 2
            elif ones == 0:
                out[r, c] = 0
            elif code == full:
                out[r, c] = P * (P - 1) + 1
            else:
                rot = ones - first_zero if first_one == 0 else P - first_one
                out[r, c] = 1 + (ones - 1) * P + rot


@lru_cache(maxsize=64)
def _geometry(shape: tuple[int, int], P: int, R: float):
    """Sample offsets and interpolation weights, exactly as scikit-image derives them (cached
    per shape, P and R; the arrays are read-only)."""
    rows, cols = shape
    rp = np.round(-R * np.sin(2 * np.pi * np.arange(P, dtype=np.double) / P), 5)
    cp = np.round(R * np.cos(2 * np.pi * np.arange(P, dtype=np.double) / P), 5)
    y = np.arange(rows, dtype=np.double)[None, :] + rp[:, None]
    x = np.arange(cols, dtype=np.double)[None, :] + cp[:, None]
    r_lo, r_hi = np.floor(y), np.ceil(y)
    c_lo, c_hi = np.floor(x), np.ceil(x)
    offsets = [(a - np.arange(n)).astype(np.int64) for a, n in
               ((r_lo, rows), (r_hi, rows), (c_lo, cols), (c_hi, cols))]
    # Offsets of one sample point are the same for every row/column (rp, cp are rounded to
    # 5 decimals, so r + rp never rounds onto an integer); the kernel relies on it.
    if not all((o == o[:, :1]).all() for o in offsets):
        raise RuntimeError(f"LBP sample offsets vary along the image for P={P}, R={R}; please report this")
    roff0, roff1, coff0, coff1 = (o[:, 0].copy() for o in offsets)
    dr, dc = y - r_lo, x - c_lo
    on_grid = (dr == 0).all(axis=1) & (dc == 0).all(axis=1)
    arrays = (on_grid, roff0, roff1, dr, coff0, coff1, dc)
    for a in arrays:
        a.flags.writeable = False
    return arrays


def _padded(image: np.ndarray, R: float) -> tuple[np.ndarray, int]:
    """float64 copy of ``image`` with a zero border wide enough for radius ``R``."""
    pad = math.ceil(R) + 1
    rows, cols = image.shape
    padded = np.zeros((rows + 2 * pad, cols + 2 * pad))
    padded[pad:pad + rows, pad:pad + cols] = image
    return padded, pad


def lbp_codes(padded: np.ndarray, pad: int, shape: tuple[int, int], P: int, R: float) -> np.ndarray:
    """Raw P-bit codes (method "default") of the image inside ``padded``; see :func:`_padded`."""
    codes = np.empty(shape, np.uint32)
    _sample_bits(padded, pad, shape[0], shape[1], *_geometry(shape, P, R), codes)
    return codes


def lbp_uniform(codes: np.ndarray, P: int) -> np.ndarray:
    """'uniform' labels of raw codes, as float64."""
    out = np.empty(codes.shape)
    _uniform(codes, P, out)
    return out


@numba.njit(cache=True, nogil=True, boundscheck=False)
def _code_counts(codes, n_codes):  # pragma: no cover - compiled
    counts = np.zeros((4, n_codes), np.int64)
    flat = codes.ravel()
    for k in range(flat.shape[0]):
        counts[k & 3, flat[k]] += 1
    return counts.sum(axis=0)


@lru_cache(maxsize=16)
def _uniform_table(P: int) -> np.ndarray:
    """'uniform' label of every raw P-bit code."""
    codes = np.arange(2 ** P, dtype=np.uint32).reshape(1, -1)
    return lbp_uniform(codes, P).astype(np.int64).ravel()


def lbp_uniform_hist(codes: np.ndarray, P: int) -> np.ndarray:
    """Counts of each 'uniform' label (length P + 2) of raw codes, without a label image.

    For P <= 16 the raw codes are counted first and the 2**P counts mapped through a label
    table: far fewer popcounts than pixels."""
    if P <= 16:
        return np.bincount(_uniform_table(P), weights=_code_counts(codes, 2 ** P), minlength=P + 2)
    return _uniform_hist(codes, P)


def n_lbp_codes(P: int, method: str) -> int:
    """Number of distinct labels ``method`` produces (histogram length); ``var`` has none."""
    return {"default": 2 ** P, "ror": 2 ** P, "uniform": P + 2, "nri_uniform": P * (P - 1) + 3}[method]


def local_binary_pattern(image: np.ndarray, P: int, R: float, method: str = "default") -> np.ndarray:
    """Local binary pattern of a grayscale image, identical to ``skimage.feature.local_binary_pattern``.

    Parameters
    ----------
    image : (M, N) ndarray
        Grayscale image, uint8 or float.
    P : int
        Number of circularly symmetric neighbour points, 1 to 31.
    R : float
        Radius of the circle, in pixels. Neighbours off the pixel grid are bilinearly
        interpolated; outside the image counts as 0.
    method : {"default", "ror", "uniform", "nri_uniform", "var"}
        ``"default"``: the P-bit code. ``"ror"``: its smallest bit rotation (rotation invariant).
        ``"uniform"``: rotation-invariant uniform patterns, P + 2 labels (number of set bits for
        a uniform pattern, P + 1 otherwise). ``"nri_uniform"``: non-rotation-invariant uniform
        patterns, P(P-1) + 3 labels. ``"var"``: variance of the P samples (contrast), not
        grayscale invariant; NaN where the samples are all equal, as in scikit-image.

    Returns
    -------
    output : (M, N) ndarray of float64
        The label (or variance) of each pixel.

    Notes
    -----
    Every method of scikit-image 0.26 is supported. The codes equal scikit-image's exactly, for
    any P and R, ties included: samples are interpolated with the same float64 expression in the
    same order. Like scikit-image, a pattern is "uniform" when it has at most two 0/1 transitions
    between consecutive samples 0..P-1, without counting the wrap from sample P-1 back to 0.
    ``"var"`` agrees to floating-point rounding (about 1e-12 relative), not bit for bit.

    References
    ----------
    .. [1] Ojala, T., Pietikäinen, M. and Mäenpää, T., "Multiresolution Gray-Scale and Rotation
           Invariant Texture Classification with Local Binary Patterns", IEEE Transactions on
           Pattern Analysis and Machine Intelligence, 24(7), 971-987, 2002.
           :DOI:`10.1109/TPAMI.2002.1017623`
    """
    image = np.asarray(image)
    if image.ndim != 2 or 0 in image.shape:
        raise ValueError(f"expected a 2-D grayscale image of shape (M, N), got {image.shape}")
    if np.issubdtype(image.dtype, np.floating):
        warnings.warn("Applying `local_binary_pattern` to floating-point images may give unexpected results "
                      "when small numerical differences between adjacent pixels are present. It is "
                      "recommended to use this function with images of integer dtype.", UserWarning, stacklevel=2)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if not 1 <= int(P) <= _MAX_P or int(P) != P:
        raise ValueError(f"P must be an integer from 1 to {_MAX_P}, got {P!r}")
    if not R > 0:
        raise ValueError(f"R must be positive, got {R!r}")
    P = int(P)
    padded, pad = _padded(image, float(R))
    if method == "var":
        out = np.empty(image.shape)
        _sample_var(padded, pad, image.shape[0], image.shape[1], *_geometry(image.shape, P, float(R))[1:],
                    out)
        return out
    codes = lbp_codes(padded, pad, image.shape, P, float(R))
    if method == "default":
        return codes.astype(np.float64)
    if method == "uniform":
        return lbp_uniform(codes, P)
    out = np.empty(image.shape)
    _relabel(codes, P, METHODS.index(method), out)
    return out
