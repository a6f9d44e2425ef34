"""Decode image files to one documented form.

Every image crackbench hands to a consumer is a C-contiguous ``uint8`` array, either
``(height, width)`` grayscale or ``(height, width, 3)`` **RGB** (not OpenCV's BGR). Alpha is
dropped, palette and 1-bit images are expanded, grayscale files become three equal channels
when RGB is asked for, and grayscale is always computed from the decoded RGB with ITU-R BT.601
weights (``cv2.COLOR_RGB2GRAY``), so an array handed to a model and the file it came from give
the same pixels. Sizes are kept as they are: resizing is the consumer's explicit choice.

A file that cannot be used raises :class:`ImageError` with a stable ``reason`` code:

=================  ==========================================================
reason             meaning
=================  ==========================================================
empty-file         zero bytes
unreadable         the operating system refused to read it (or it vanished)
not-an-image       no decoder recognises the bytes, or decoding failed
truncated          a JPEG without its end-of-image marker, a PNG without IEND
unsupported-depth  not 8 bits per channel (16-bit PNG/TIFF, float TIFF, ...)
too-large          width x height above the configured pixel limit
=================  ==========================================================
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import CrackbenchError

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "IMAGE_EXTENSIONS",
    "ImageError",
    "decode_image",
    "read_image",
    "to_gray",
]

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})
DEFAULT_MAX_PIXELS = 50_000_000
# Pillow modes that hold more than 8 bits per channel.
_DEEP_MODES = {"I", "F", "I;16", "I;16B", "I;16L", "I;16N", "RGBA;16B", "RGB;16B"}

cv2.setNumThreads(1)  # parallelism is joblib's job; OpenCV's own pool would oversubscribe it
if hasattr(cv2, "utils") and hasattr(cv2.utils, "logging"):
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


class ImageError(CrackbenchError):
    """A file that cannot be used as an image; ``reason`` is a stable code, ``detail`` says why."""

    def __init__(self, path: str | os.PathLike, reason: str, detail: str):
        self.path = str(path)
        self.reason = reason
        self.detail = detail
        super().__init__(f"{self.path}: {reason}: {detail}")


def _check_complete(data: bytes, fmt: str | None, name: str) -> None:
    if fmt == "JPEG" and b"\xff\xd9" not in data[-64:]:
        raise ImageError(name, "truncated", "JPEG has no end-of-image marker (file cut short)")
    if fmt == "PNG" and b"IEND" not in data[-12:]:
        raise ImageError(name, "truncated", "PNG has no IEND chunk (file cut short)")


def decode_image(
    data: bytes,
    *,
    mode: str = "rgb",
    max_pixels: int = DEFAULT_MAX_PIXELS,
    name: str | os.PathLike = "<bytes>",
) -> np.ndarray:
    """Decode encoded image bytes to ``uint8`` RGB ``(h, w, 3)`` or grayscale ``(h, w)``.

    Parameters
    ----------
    data : bytes
        The encoded file (JPEG, PNG, BMP, TIFF, WebP).
    mode : {"rgb", "gray"}
        Output form.
    max_pixels : int
        Files whose header declares more than this many pixels are refused before decoding.
    name : str or path-like
        Used in error messages only.

    Raises
    ------
    ImageError
        With one of the reason codes listed in the module docstring.
    """
    if mode not in ("rgb", "gray"):
        raise ValueError(f"mode must be 'rgb' or 'gray', got {mode!r}")
    if not data:
        raise ImageError(name, "empty-file", "file has zero bytes")
    try:
        # Pillow reads only the header here: size, format and bit depth, without decoding pixels.
        with Image.open(io.BytesIO(data)) as header:
            width, height = header.size
            fmt, pil_mode = header.format, header.mode
    except Image.DecompressionBombError as exc:
        raise ImageError(name, "too-large", str(exc)) from None
    except UnidentifiedImageError:
        raise ImageError(name, "not-an-image", "no image decoder recognises these bytes") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(name, "not-an-image", f"unreadable image header ({type(exc).__name__})") from None
    if width * height > max_pixels:
        raise ImageError(
            name, "too-large", f"{width}x{height} = {width * height:,} pixels > limit {max_pixels:,}"
        )
    if pil_mode in _DEEP_MODES:
        raise ImageError(
            name, "unsupported-depth", f"{fmt} in mode {pil_mode!r}; 8 bits per channel expected"
        )
    _check_complete(data, fmt, str(name))
    bgr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if bgr is None or bgr.ndim != 3 or bgr.dtype != np.uint8:
        raise ImageError(name, "not-an-image", f"{fmt} header read but pixel data failed to decode")
    if mode == "gray":  # same weights and rounding as to_gray(RGB): identical pixels, one pass
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def read_image(
    path: str | os.PathLike, *, mode: str = "rgb", max_pixels: int = DEFAULT_MAX_PIXELS
) -> np.ndarray:
    """Read and decode one file; see :func:`decode_image` for the output form and errors."""
    return decode_image(read_bytes(path), mode=mode, max_pixels=max_pixels, name=path)


def read_bytes(path: str | os.PathLike) -> bytes:
    """The file's bytes, or :class:`ImageError` ``unreadable`` naming the OS error."""
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ImageError(path, "unreadable", f"{type(exc).__name__}: {exc.strerror or exc}") from None


def to_gray(image: np.ndarray) -> np.ndarray:
    """RGB ``(h, w, 3)`` uint8 -> grayscale ``(h, w)`` uint8 with the same weights as decoding."""
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
