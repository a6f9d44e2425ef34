"""Near-duplicate images: a 256-bit difference hash and Hamming-distance grouping.

Exact duplicates share a sha256. Near duplicates, the same surface re-encoded, rescaled or cropped a
few pixels apart (Özgenel's patches were cut from 458 photographs), do not; they are found with a
difference hash (dHash, Krawetz 2013): the grey image is averaged down to 17x16 cells
(``cv2.INTER_AREA``) and each of the 256 bits says whether a cell is brighter than its right-hand
neighbour. Re-encoding flips a few bits, a shift of one or two pixels a few dozen; unrelated concrete
patches differ in about half of them (128). Two images are near duplicates when their hashes differ in
at most ``max_distance`` bits. A global hash cannot see that two crops overlap in part: crops of one
photograph more than a few pixels apart are not near duplicates here (``--group-by`` with photo ids
keeps those together).

Why our own kernel: the hash is computed on the grey image the dataset scan already decodes (one
resize, ~20 us), so it costs no extra read or decode; ``imagehash.dhash(hash_size=16)`` computes the
same bits through Pillow from the file again. The all-pairs comparison is a small numba kernel (XOR
and popcount over four 64-bit words per pair). ``python -m crackbench.benchmarks.duplicates`` times both.
"""

from __future__ import annotations

import cv2
import numba
import numpy as np

__all__ = ["DEFAULT_NEAR_DISTANCE", "hash_array", "image_hash", "near_components", "near_pairs", "nearest_distance"]

#: Default tolerance in bits (of 256), about a fifth of the bits: see docs/studies/near-duplicates.md.
DEFAULT_NEAR_DISTANCE = 48


def image_hash(gray: np.ndarray) -> str:
    """256-bit difference hash of a grey uint8 image, as 64 hex digits."""
    small = cv2.resize(gray, (17, 16), interpolation=cv2.INTER_AREA).astype(np.int16)
    bits = (small[:, 1:] > small[:, :-1]).ravel()
    return np.packbits(bits).tobytes().hex()


def hash_array(hashes: list[str]) -> np.ndarray:
    """``(n, 4)`` uint64 words of hex hashes (an empty hash, for a file never hashed, is all ones
    and ``valid`` is False for it: see :func:`near_pairs`)."""
    out = np.full((len(hashes), 4), np.iinfo(np.uint64).max, np.uint64)
    for i, h in enumerate(hashes):
        if h:
            out[i] = np.frombuffer(bytes.fromhex(h), dtype=">u8")
    return out


@numba.njit(cache=True, nogil=True)
def _popcount(x):  # pragma: no cover - compiled; SWAR popcount of a 64-bit word
    x = x - ((x >> np.uint64(1)) & np.uint64(0x5555555555555555))
    x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
    x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return (x * np.uint64(0x0101010101010101)) >> np.uint64(56)


@numba.njit(cache=True, nogil=True)
def _pairs(h, valid, max_distance):  # pragma: no cover - compiled
    n = h.shape[0]
    out_i, out_j, out_d = [], [], []
    for i in range(n):
        if not valid[i]:
            continue
        for j in range(i + 1, n):
            if not valid[j]:
                continue
            d = (_popcount(h[i, 0] ^ h[j, 0]) + _popcount(h[i, 1] ^ h[j, 1]) + _popcount(h[i, 2] ^ h[j, 2])
                 + _popcount(h[i, 3] ^ h[j, 3]))
            if d <= max_distance:
                out_i.append(i)
                out_j.append(j)
                out_d.append(np.int64(d))
    return out_i, out_j, out_d


@numba.njit(cache=True, nogil=True)
def _nearest(a, b, same):  # pragma: no cover - compiled; same: a is b, skip i == j
    out = np.full(a.shape[0], 257, np.int64)
    for i in range(a.shape[0]):
        best = 257
        for j in range(b.shape[0]):
            if same and i == j:
                continue
            d = (_popcount(a[i, 0] ^ b[j, 0]) + _popcount(a[i, 1] ^ b[j, 1]) + _popcount(a[i, 2] ^ b[j, 2])
                 + _popcount(a[i, 3] ^ b[j, 3]))
            if d < best:
                best = d
        out[i] = best
    return out


def near_pairs(hashes: list[str], max_distance: int) -> list[tuple[int, int, int]]:
    """``(i, j, distance)`` for every pair ``i < j`` of hashed images at most ``max_distance`` bits
    apart (files without a hash are never paired), in ``(i, j)`` order."""
    if len(hashes) < 2:
        return []
    valid = np.array([bool(h) for h in hashes])
    i, j, d = _pairs(hash_array(hashes), valid, int(max_distance))
    return list(zip(i, j, d, strict=True))


def near_components(hashes: list[str], max_distance: int) -> np.ndarray:
    """Component label of each image in the graph of near pairs (chains join: a near b near c puts
    all three in one component); deterministic for the same input order."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    pairs = near_pairs(hashes, max_distance)
    n = len(hashes)
    rows = np.array([p[0] for p in pairs], np.int64)
    cols = np.array([p[1] for p in pairs], np.int64)
    graph = coo_matrix((np.ones(len(pairs), np.int8), (rows, cols)), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def nearest_distance(query: list[str], reference: list[str] | None = None) -> np.ndarray:
    """For each ``query`` hash, the Hamming distance to the nearest ``reference`` hash, or without
    ``reference`` to the nearest other ``query`` hash (257 where there is no hash to compare)."""
    out = np.full(len(query), 257, np.int64)
    asked = np.array([bool(h) for h in query], bool)
    same = reference is None
    ref = [h for h in (query if same else reference) if h]
    if not ref or not asked.any():
        return out
    out[asked] = _nearest(hash_array([h for h in query if h]), hash_array(ref), same)
    return out
