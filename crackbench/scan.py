"""Scan a whole photograph with a patch classifier: say where the cracks are.

Every crackbench model classifies patches. :func:`scan_image` slides one over a photograph as a grid
of square tiles (default 227 px, stride half a tile) and returns each tile's probability with its
place in the **original** photo's pixels. Work per photo happens once: one decode, one resample
(``scale``), then tiles are zero-copy views of that array
(:func:`numpy.lib.stride_tricks.sliding_window_view`) fed to the model in batches, so the model's
feature extraction or CNN input is built for a whole batch at a time.

Coverage: tile origins run from 0 in steps of ``stride``; the last row and column are shifted
inward to end exactly at the border, so every pixel is covered and no tile is cut short. A photo
smaller than one tile is padded (edge pixels repeated) to one tile, with a note.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import cv2
import numpy as np
import pandas as pd

from .imageio import DEFAULT_MAX_PIXELS, read_image, to_gray
from .model import ImageModel

__all__ = ["ScanResult", "scan_image", "tile_origins"]


def tile_origins(length: int, tile: int, stride: int) -> np.ndarray:
    """Start offsets of tiles along one axis: ``0, stride, 2*stride, ...``, the last one shifted
    inward to ``length - tile`` so the tiles end exactly at the border; ``[0]`` when ``length <=
    tile``."""
    if tile < 1 or stride < 1:
        raise ValueError(f"tile and stride must be positive, got tile={tile}, stride={stride}")
    if length <= tile:
        return np.zeros(1, np.int64)
    starts = np.arange(0, length - tile + 1, stride, dtype=np.int64)
    if starts[-1] != length - tile:
        starts = np.append(starts, length - tile)
    return starts


@dataclass
class ScanResult:
    """What :func:`scan_image` found in one photo.

    ``probabilities`` is the ``(rows, cols)`` grid of P(crack), row ``i`` / column ``j`` being the
    tile at ``ys[i], xs[j]`` of the resampled photo; ``tiles`` is the same, one row per tile, in
    the original photo's pixels (``x, y, width, height, probability, label``).
    """

    width: int  # original photo
    height: int
    tile: int
    stride: int
    scale: float
    threshold: float
    positive_class: str
    negative_class: str
    xs: np.ndarray  # tile origins in the resampled photo
    ys: np.ndarray
    probabilities: np.ndarray
    scanned_shape: tuple[int, int]  # (height, width) of the resampled, padded photo
    notes: list[str] = field(default_factory=list)

    @property
    def tiles(self) -> pd.DataFrame:
        yy, xx = np.meshgrid(self.ys, self.xs, indexing="ij")
        x0 = np.minimum(np.round(xx.ravel() * self.scale), self.width).astype(int)
        y0 = np.minimum(np.round(yy.ravel() * self.scale), self.height).astype(int)
        x1 = np.minimum(np.round((xx.ravel() + self.tile) * self.scale), self.width).astype(int)
        y1 = np.minimum(np.round((yy.ravel() + self.tile) * self.scale), self.height).astype(int)
        p = self.probabilities.ravel()
        return pd.DataFrame({"x": x0, "y": y0, "width": x1 - x0, "height": y1 - y0, "probability": p,
                             "label": np.where(p >= self.threshold, self.positive_class, self.negative_class)})

    def probability_map(self) -> np.ndarray:
        """Float32 ``(height, width)`` map over the original photo: each pixel holds the mean
        probability of the tiles that cover it."""
        total = np.zeros(self.scanned_shape, np.float64)
        count = np.zeros(self.scanned_shape, np.float64)
        for i, y in enumerate(self.ys):
            for j, x in enumerate(self.xs):
                total[y:y + self.tile, x:x + self.tile] += self.probabilities[i, j]
                count[y:y + self.tile, x:x + self.tile] += 1
        mean = (total / np.maximum(count, 1)).astype(np.float32)
        h, w = (round(self.height / self.scale), round(self.width / self.scale))
        mean = mean[:max(h, 1), :max(w, 1)]  # drop padding added to a photo smaller than a tile
        return cv2.resize(mean, (self.width, self.height), interpolation=cv2.INTER_LINEAR)

    def overlay(self, image: np.ndarray, *, max_side: int = 1600, alpha: float = 0.45) -> np.ndarray:
        """The photo (RGB or grey uint8, original size), downsized so its longer side is at most
        ``max_side``, under a translucent probability heatmap, with the outline of every tile at
        or above the threshold. Returns RGB uint8."""
        rgb = image if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
        f = min(1.0, max_side / max(self.width, self.height))
        size = (max(1, round(self.width * f)), max(1, round(self.height * f)))
        base = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        prob = cv2.resize(self.probability_map(), size, interpolation=cv2.INTER_AREA)
        heat = cv2.applyColorMap(np.clip(prob * 255, 0, 255).astype(np.uint8), cv2.COLORMAP_JET)
        heat = cv2.cvtColor(heat, cv2.COLOR_BGR2RGB)
        weight = (alpha * prob)[..., None]  # low probabilities leave the photo visible
        out = (base * (1 - weight) + heat * weight).astype(np.uint8)
        for r in self.tiles.itertuples():
            if r.probability >= self.threshold:
                cv2.rectangle(out, (round(r.x * f), round(r.y * f)),
                              (round((r.x + r.width) * f) - 1, round((r.y + r.height) * f) - 1), (255, 0, 0),
                              max(1, round(2 * f * max(self.width, self.height) / 2000)))
        return out


def scan_image(
    model: ImageModel,
    image_or_path: np.ndarray | str | os.PathLike,
    *,
    tile: int = 227,
    stride: int | None = None,
    scale: float = 1.0,
    batch_size: int = 64,
    threshold: float = 0.5,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> ScanResult:
    """Slide ``model`` over a photograph; see the module docstring.

    Parameters
    ----------
    model : ImageModel
        Any trained crackbench model (classical or CNN).
    image_or_path : ndarray or path
        A uint8 photo, ``(h, w)`` grey or ``(h, w, 3)`` RGB, or an image file.
    tile, stride : int
        Tile side and step in pixels of the resampled photo (default stride: half a tile).
    scale : float
        Resample the photo by ``1 / scale`` before tiling: a photo taken from twice the distance of
        the training patches is scanned at ``scale=2``, so each tile covers ``2 * tile`` original
        pixels and sees cracks at the size the model was trained on.
    batch_size : int
        Tiles per ``predict_proba`` call.
    threshold : float
        A tile at or above it is labelled with the positive class.
    """
    stride = stride or max(1, tile // 2)
    if scale <= 0:
        raise ValueError(f"scale must be positive, got {scale}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if isinstance(image_or_path, (str, os.PathLike)):
        image = read_image(image_or_path, mode=model.input_mode, max_pixels=max_pixels)
    else:
        image = np.asarray(image_or_path)
        if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
            raise ValueError(f"expected a uint8 photo of shape (h, w) or (h, w, 3), got {image.dtype} "
                             f"{image.shape}")
        if model.input_mode == "gray" and image.ndim == 3:
            image = to_gray(image)
    height, width = image.shape[:2]
    notes = []
    scanned = image
    if scale != 1.0:
        size = (max(1, round(width / scale)), max(1, round(height / scale)))
        scanned = cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale > 1 else cv2.INTER_LINEAR)
    sh, sw = scanned.shape[:2]
    if sh < tile or sw < tile:
        pad = ((0, max(0, tile - sh)), (0, max(0, tile - sw))) + (((0, 0),) if scanned.ndim == 3 else ())
        scanned = np.pad(scanned, pad, mode="edge")
        notes.append(f"smaller than one tile ({sw}x{sh} < {tile}x{tile} after scale {scale}): scanned as one "
                     f"tile padded with its edge pixels")
    ys = tile_origins(scanned.shape[0], tile, stride)
    xs = tile_origins(scanned.shape[1], tile, stride)
    axes = (0, 1)
    windows = np.lib.stride_tricks.sliding_window_view(scanned, (tile, tile), axis=axes)  # views, no copies
    origins = [(y, x) for y in ys for x in xs]
    proba = np.empty(len(origins), np.float64)
    for start in range(0, len(origins), batch_size):
        batch = origins[start:start + batch_size]
        tiles = [windows[y, x] if scanned.ndim == 2 else np.moveaxis(windows[y, x], 0, -1) for y, x in batch]
        proba[start:start + len(batch)] = model.predict_proba(tiles)[:, 1]
    return ScanResult(width=width, height=height, tile=tile, stride=stride, scale=scale, threshold=threshold,
                      positive_class=model.classes_[1], negative_class=model.classes_[0], xs=xs, ys=ys,
                      probabilities=proba.reshape(len(ys), len(xs)), scanned_shape=scanned.shape[:2], notes=notes)
