"""Input checking shared by the feature estimators."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from crackbench.imageio import to_gray


def _as_uint8(img: np.ndarray, index: int) -> np.ndarray:
    if img.dtype == np.uint8:
        return img
    if img.dtype.kind == "f":
        if not np.isfinite(img).all():
            raise ValueError(f"image {index}: float image contains NaN or infinity")
        if img.min() < 0 or img.max() > 1:
            raise ValueError(f"image {index}: float images must hold values in [0, 1], got range "
                             f"[{img.min():g}, {img.max():g}]")
        return np.rint(img * 255).astype(np.uint8)
    if img.dtype.kind in "iu":
        if img.min() < 0 or img.max() > 255:
            raise ValueError(f"image {index}: integer images must hold values in [0, 255], got "
                             f"[{img.min()}, {img.max()}]; convert deeper images to 8 bits first")
        return img.astype(np.uint8)
    raise ValueError(f"image {index}: expected a uint8 or float array, got dtype {img.dtype}")


def check_gray(image) -> np.ndarray:
    """``image`` as an array if it is a non-empty (M, N) uint8 grey image; the kernels' input check."""
    image = np.asarray(image)
    if image.ndim != 2 or image.dtype != np.uint8 or 0 in image.shape:
        raise ValueError(f"expected a non-empty (M, N) uint8 grayscale image, got {image.dtype} "
                         f"array of shape {image.shape}")
    return image


def check_images(X, *, image_size: tuple[int, int] | None = None) -> list[np.ndarray]:
    """Validate a stack or list of images and return grayscale uint8 arrays.

    Accepts an array ``(n, h, w)`` / ``(n, h, w, 3)`` or a sequence of ``(h, w)`` / ``(h, w, 3)``
    arrays of possibly different sizes; uint8 (0..255), other integer types within 0..255, or
    float in [0, 1]. RGB becomes grayscale with :func:`crackbench.imageio.to_gray`. With
    ``image_size=(height, width)`` every image is resized with bilinear interpolation (cheaper than
    area averaging, and HOG's cell histograms average the pixels anyway).
    """
    if isinstance(X, np.ndarray):
        if X.ndim not in (3, 4) or (X.ndim == 4 and X.shape[-1] != 3):
            raise ValueError(f"expected images of shape (n, h, w) or (n, h, w, 3), got {X.shape}")
        images: Sequence = list(X)
    elif isinstance(X, Sequence) and not isinstance(X, (str, bytes)):
        images = X
    else:
        raise ValueError(f"expected an array of images or a list of image arrays, got {type(X).__name__}")
    if len(images) == 0:
        raise ValueError("expected at least one image, got an empty input")
    out = []
    for i, img in enumerate(images):
        img = np.asarray(img)
        if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[-1] != 3) or 0 in img.shape:
            raise ValueError(f"image {i}: expected shape (h, w) or (h, w, 3), got {img.shape}")
        gray = to_gray(_as_uint8(img, i))
        if image_size is not None and gray.shape != tuple(image_size):
            h, w = image_size
            gray = cv2.resize(gray, (w, h), interpolation=cv2.INTER_LINEAR)
        out.append(np.ascontiguousarray(gray))
    return out
