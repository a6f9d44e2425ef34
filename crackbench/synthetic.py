"""Synthetic concrete-surface patches, with and without cracks: the embedded default dataset.

Also whole photographs with their crack masks (:func:`synthetic_photo`, :func:`make_synthetic_photos`),
drawn with the same texture and cracks at photo scale, for scanning tests and the default run.

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

__all__ = ["CLASS_NAMES", "make_synthetic_dataset", "make_synthetic_photos", "synthetic_image", "synthetic_photo"]

CLASS_NAMES = ("Negative", "Positive")


def _noise(rng: np.random.Generator, size: int | tuple[int, int], sigma: float) -> np.ndarray:
    shape = (size, size) if isinstance(size, int) else size
    n = rng.standard_normal(shape, dtype=np.float32)
    n = cv2.GaussianBlur(n, (0, 0), sigma)
    return n / (n.std() + 1e-6)


def _walk(rng, size, start, angle, steps, step_len, jitter, pull=0.0):
    """Random-walk polyline from ``start``; ``size`` is the side, or (width, height), of the canvas it
    stops leaving; ``pull`` draws the heading back towards the initial one at each step."""
    width, height = (size, size) if np.isscalar(size) else size
    pts = [np.asarray(start, float)]
    heading = angle
    for _ in range(steps):
        angle += rng.normal(0.0, jitter) + pull * (heading - angle)
        nxt = pts[-1] + step_len * np.array([np.cos(angle), np.sin(angle)])
        pts.append(nxt)
        if not (-10 <= nxt[0] <= width + 10 and -10 <= nxt[1] <= height + 10):
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


def synthetic_photo(seed: int = 0, width: int = 2048, height: int = 1536, *, cracks: int | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """A concrete-like RGB photograph and its crack mask.

    The surface has the patches' grain, pores, stains and an illumination gradient, at photo scale;
    ``cracks`` (default: 2 to 4, drawn from ``seed``) thin, dark, branching random-walk cracks, 1-5 px
    wide, cross it. Returns ``(photo, mask)``: ``(height, width, 3)`` uint8 and ``(height, width)``
    bool, True on crack pixels. The same arguments give the same arrays.
    """
    if width < 16 or height < 16:
        raise ValueError(f"a synthetic photo is at least 16x16 pixels, got {width}x{height}")
    rng = np.random.default_rng([seed, 7, width, height])
    shape = (height, width)
    img = np.full(shape, rng.uniform(110.0, 180.0), np.float32)
    for sigma, lo, hi in ((0.6, 4, 9), (2.5, 3, 7)):
        img += rng.uniform(lo, hi) * _noise(rng, shape, sigma)
    for cell, lo, hi in ((64, 1.5, 4.0), (400, 3.0, 8.0)):  # blotches and shading, drawn small and enlarged
        low = rng.standard_normal((height // cell + 3, width // cell + 3)).astype(np.float32)
        img += rng.uniform(lo, hi) * cv2.resize(low, (width, height), interpolation=cv2.INTER_CUBIC)
    yy, xx = np.mgrid[-1:1:height * 1j, -1:1:width * 1j].astype(np.float32)
    theta = rng.uniform(0, 2 * np.pi)
    img += rng.uniform(0, 24) * (np.cos(theta) * xx + np.sin(theta) * yy)
    del yy, xx
    pores = np.zeros(shape, np.uint8)
    for _ in range(int(width * height / 1500)):
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        cv2.circle(pores, centre, int(rng.integers(1, 4)), int(rng.integers(60, 255)), -1, cv2.LINE_AA)
    img -= 0.22 * cv2.GaussianBlur(pores, (0, 0), 0.8).astype(np.float32)
    del pores
    drawn = np.zeros(shape, np.uint8)
    n_cracks = int(rng.integers(2, 5)) if cracks is None else cracks
    for _ in range(n_cracks):
        side = rng.integers(4)
        tx, ty = rng.uniform(0.1, 0.9) * width, rng.uniform(0.1, 0.9) * height
        start = [(tx, -2.0), (width + 2.0, ty), (tx, height + 2.0), (-2.0, ty)][side]
        target = rng.uniform((0.25 * width, 0.25 * height), (0.75 * width, 0.75 * height))
        angle = np.arctan2(target[1] - start[1], target[0] - start[0])
        step = rng.uniform(4, 8)
        main = _walk(rng, (width, height), start, angle, steps=int(rng.uniform(0.3, 1.2) * (width + height) / step),
                     step_len=step, jitter=0.12, pull=0.04)
        w0, w1 = rng.uniform(1.5, 5.0), rng.uniform(1.0, 4.0)
        _draw_path(drawn, main, w0, w1)
        for _ in range(int(rng.integers(0, 4))):
            origin = main[rng.integers(len(main) // 5, max(len(main) // 5 + 1, 4 * len(main) // 5))]
            branch = _walk(rng, (width, height), origin, rng.uniform(-np.pi, np.pi), steps=int(rng.integers(20, 80)),
                           step_len=rng.uniform(3, 6), jitter=0.25)
            _draw_path(drawn, branch, min(w0, w1) * 0.7, 0.8)
    depth = rng.uniform(45, 90)
    shade = cv2.GaussianBlur(drawn, (0, 0), 0.7).astype(np.float32) / 255.0
    img -= depth * shade * (0.75 + 0.5 * np.clip(_noise(rng, shape, 6.0) * 0.5 + 0.5, 0, 1))
    img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.4, 0.9))
    tint = rng.normal(0.0, 1.5, 3).astype(np.float32)
    photo = np.clip(img[..., None] + tint, 0, 255).astype(np.uint8)
    return photo, drawn >= 128


def make_synthetic_photos(
    out: str | os.PathLike, n: int = 4, *, seed: int = 0, width: int = 2048, height: int = 1536,
    progress: bool = True,
) -> Path:
    """Write ``n`` synthetic photographs as ``out/images/photo-NNN.jpg`` (JPEG quality 92) and their
    crack masks as ``out/masks/photo-NNN.png`` (white = crack): the layout ``crackbench scan --masks``
    and ``crackbench benchmark --scan-data`` read. Photo ``i`` is :func:`synthetic_photo` with seed
    ``(seed, i)``; the same arguments give the same files."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    for i in tqdm(range(n), desc="synth photos", unit="photo", disable=not progress, leave=False):
        photo, mask = synthetic_photo(seed * 100_003 + i, width, height)
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(photo, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])
        ok2, mbuf = cv2.imencode(".png", mask.astype(np.uint8) * 255)
        if not (ok and ok2):  # pragma: no cover - OpenCV always encodes uint8 images
            raise RuntimeError("image encoding failed")
        (out / "images" / f"photo-{i:03d}.jpg").write_bytes(buf.tobytes())
        (out / "masks" / f"photo-{i:03d}.png").write_bytes(mbuf.tobytes())
    return out
