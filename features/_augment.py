"""Training-image augmentation for the classical pipelines: a camera farther away, a fainter crack."""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["augment_image"]

AUGMENTATIONS = ("zoom", "faint", "zoom+faint")


def augment_image(gray: np.ndarray, how: str) -> np.ndarray:
    """A copy of a grey uint8 training image as another camera might see it.

    - ``"zoom"``: shrunk to half its side (area averaging) and mirror-tiled back to full size:
      cracks half as wide and twice as many per patch, as from twice the distance, without seams;
    - ``"faint"``: contrast halved about the median (a fainter crack, flatter light);
    - ``"zoom+faint"``: both.
    """
    if how not in AUGMENTATIONS:
        raise ValueError(f"unknown augmentation {how!r}; expected one of {AUGMENTATIONS}")
    out = np.asarray(gray)
    if "zoom" in how:
        h, w = out.shape
        small = cv2.resize(out, (max(8, w // 2), max(8, h // 2)), interpolation=cv2.INTER_AREA)
        tile = np.vstack([np.hstack([small, small[:, ::-1]]), np.hstack([small[::-1], small[::-1, ::-1]])])
        out = np.ascontiguousarray(np.pad(tile, ((0, max(0, h - tile.shape[0])), (0, max(0, w - tile.shape[1]))),
                                          mode="reflect")[:h, :w])
    if "faint" in how:
        m = float(np.median(out))
        out = np.clip(m + (out.astype(np.float32) - m) * 0.5, 0, 255).astype(np.uint8)
    return out
