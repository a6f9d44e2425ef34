"""Synthetic concrete-surface patches, with and without cracks: the embedded default dataset.

Each image is drawn from its own generator seeded by ``(seed, class, index)``, so the output does
not depend on how many images are asked for or in which order they are written, and the same
seed reproduces the same bytes. The texture has grain at three scales, pores, stains, an
illumination gradient, blur and JPEG artefacts; its brightness varies widely from image to image,
so the mean intensity says almost nothing about the class. A crack is a dark, thin,
variable-width random-walk polyline crossing the patch at a random angle, sometimes branching,
sometimes faint. Negatives carry the same pores and stains, and some carry a faint straight
scratch, so a crack is not "any dark pixel".
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
from tqdm.auto import tqdm

__all__ = ["CLASS_NAMES", "make_synthetic_dataset", "synthetic_image"]

CLASS_NAMES = ("Negative", "Positive")


def _noise(rng: np.random.Generator, size: int, sigma: float) -> np.ndarray:
    n = rng.standard_normal((size, size)).astype(np.float32)
    n = cv2.GaussianBlur(n, (0, 0), sigma)
    return n / (n.std() + 1e-6)


def _walk(rng, size, start, angle, steps, step_len, jitter):
    pts = [np.asarray(start, float)]
    for _ in range(steps):
        angle += rng.normal(0.0, jitter)
        nxt = pts[-1] + step_len * np.array([np.cos(angle), np.sin(angle)])
        pts.append(nxt)
        if not (-10 <= nxt[0] <= size + 10 and -10 <= nxt[1] <= size + 10):
            break
    return np.array(pts)


def _draw_path(mask, pts, width0, width1):
    """Antialiased polyline whose width goes smoothly from ``width0`` to ``width1``."""
    n = len(pts) - 1
    for i in range(n):
        w = width0 + (width1 - width0) * i / max(n - 1, 1)
        p, q = (np.round(pts[i] * 16).astype(int), np.round(pts[i + 1] * 16).astype(int))
        cv2.line(mask, tuple(p), tuple(q), 255, max(1, round(w)), cv2.LINE_AA, shift=4)


def _crack_mask(rng: np.random.Generator, size: int) -> np.ndarray:
    mask = np.zeros((size, size), np.uint8)
    side = rng.integers(4)
    t = rng.uniform(0.15, 0.85) * size
    start = [(t, -2.0), (size + 2.0, t), (t, size + 2.0), (-2.0, t)][side]
    to_centre = np.arctan2(size / 2 - start[1], size / 2 - start[0])
    angle = to_centre + rng.uniform(-0.6, 0.6)
    main = _walk(rng, size, start, angle, steps=120, step_len=rng.uniform(3, 6), jitter=0.12)
    w0, w1 = rng.uniform(1.0, 4.5), rng.uniform(1.0, 4.5)
    _draw_path(mask, main, w0, w1)
    for _ in range(rng.choice(3, p=[0.5, 0.35, 0.15])):
        origin = main[rng.integers(len(main) // 4, max(len(main) // 4 + 1, 3 * len(main) // 4))]
        branch_angle = rng.uniform(-np.pi, np.pi)
        branch = _walk(rng, size, origin, branch_angle, steps=int(rng.integers(8, 30)),
                       step_len=rng.uniform(2, 5), jitter=0.3)
        _draw_path(mask, branch, min(w0, w1) * 0.7, 0.8)
    return mask


def synthetic_image(rng: np.random.Generator, crack: bool, size: int = 227, quality: int | None = None
                    ) -> bytes:
    """One encoded JPEG of a concrete-like patch, with a crack if ``crack``."""
    img = np.full((size, size), rng.uniform(90.0, 195.0), np.float32)
    for sigma, lo, hi in ((0.6, 4, 11), (2.5, 3, 9), (14.0, 4, 14)):
        img += rng.uniform(lo, hi) * _noise(rng, size, sigma)
    yy, xx = np.mgrid[-1:1:size * 1j, -1:1:size * 1j].astype(np.float32)
    theta = rng.uniform(0, 2 * np.pi)
    img += rng.uniform(0, 28) * (np.cos(theta) * xx + np.sin(theta) * yy)
    stains = np.zeros((size, size), np.float32)
    for _ in range(rng.integers(0, 4)):
        centre = tuple(int(v) for v in rng.integers(0, size, 2))
        axes = tuple(int(v) for v in rng.integers(15, 70, 2))
        cv2.ellipse(stains, centre, axes, rng.uniform(0, 180), 0, 360, rng.uniform(-25, 18), -1)
    img += cv2.GaussianBlur(stains, (0, 0), 9)
    pores = np.zeros((size, size), np.uint8)
    for _ in range(rng.integers(0, 45)):
        centre = tuple(int(v) for v in rng.integers(0, size, 2))
        cv2.circle(pores, centre, int(rng.integers(1, 4)), int(rng.integers(60, 255)), -1, cv2.LINE_AA)
    img -= 0.22 * cv2.GaussianBlur(pores, (0, 0), 0.8).astype(np.float32)
    if rng.random() < 0.3:  # a faint straight scratch or formwork line, in either class
        scratch = np.zeros((size, size), np.uint8)
        p, q = rng.integers(0, size, 2), rng.integers(0, size, 2)
        cv2.line(scratch, tuple(int(v) for v in p), tuple(int(v) for v in q), 255, 1, cv2.LINE_AA)
        img -= rng.uniform(4, 12) * scratch.astype(np.float32) / 255.0
    if crack:
        depth = rng.uniform(22, 38) if rng.random() < 0.15 else rng.uniform(38, 95)
        mask = cv2.GaussianBlur(_crack_mask(rng, size), (0, 0), 0.7).astype(np.float32) / 255.0
        img -= depth * mask * (0.7 + 0.6 * np.clip(_noise(rng, size, 6.0) * 0.5 + 0.5, 0, 1))
    sigma = rng.uniform(0.0, 1.1)
    if sigma > 0.3:
        img = cv2.GaussianBlur(img, (0, 0), sigma)
    tint = rng.normal(0.0, 1.5, 3).astype(np.float32)
    rgb = np.clip(img[..., None] + tint + rng.normal(0, 1.5, (size, size, 1)), 0, 255).astype(np.uint8)
    q = int(rng.integers(60, 96)) if quality is None else quality
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, q])
    if not ok:  # pragma: no cover - OpenCV always encodes a uint8 image
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()


def make_synthetic_dataset(
    out: str | os.PathLike, n: int = 2000, *, seed: int = 0, size: int = 227, progress: bool = True
) -> Path:
    """Write ``n`` images (half per class) as ``out/Positive/*.jpg`` and ``out/Negative/*.jpg``.

    Existing files with the same names are overwritten; the result is identical for the same
    ``n``, ``seed`` and ``size``.
    """
    if n < 2:
        raise ValueError(f"n must be at least 2 (one image per class), got {n}")
    out = Path(out)
    jobs = [(label, i) for label in (1, 0) for i in range(n // 2 + (n % 2 if label else 0))]
    for name in CLASS_NAMES:
        (out / name).mkdir(parents=True, exist_ok=True)
    for label, i in tqdm(jobs, desc="synth", unit="img", disable=not progress, leave=False):
        rng = np.random.default_rng([seed, label, i])
        (out / CLASS_NAMES[label] / f"{i:05d}.jpg").write_bytes(synthetic_image(rng, bool(label), size))
    return out
