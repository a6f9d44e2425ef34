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
unreadable         the operating system refused to read it, it vanished, or it is
                   a broken or looping symbolic link
not-a-regular-file a named pipe, socket or device with an image name (never opened)
unreadable-folder  a folder given where a file was expected, that cannot be listed
not-an-image       no decoder recognises the bytes, or decoding failed
truncated          a JPEG whose compressed data has no end-of-image marker, a PNG
                   without IEND (bytes appended after a complete image are fine)
unsupported-depth  more than 8 bits per channel, grey or colour alike (16-bit
                   PNG/TIFF, float TIFF, ...): never silently reduced
too-large          width x height above the configured pixel limit
=================  ==========================================================
"""

from __future__ import annotations

import errno
import io
import os
import stat
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


def _jpeg_complete(data: bytes) -> bool:
    """Whether the JPEG's compressed data ends with an end-of-image marker. Walks the marker
    segments to the first start-of-scan (so an EXIF thumbnail's marker does not count), then looks
    for the end marker after it; bytes after it (appended metadata) do not matter."""
    i, n = 2, len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            return False
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
        elif marker == 0xD9:
            return True
        elif 0xD0 <= marker <= 0xD7 or marker == 0x01:  # markers without a length
            i += 2
        elif marker == 0xDA:  # start of scan: entropy-coded data follows, escaped, until a marker
            return data.find(b"\xff\xd9", i + 2) != -1
        else:
            i += 2 + int.from_bytes(data[i + 2:i + 4], "big")
    return False


def _check_complete(data: bytes, fmt: str | None, name: str) -> None:
    if fmt == "JPEG" and not _jpeg_complete(data):
        raise ImageError(name, "truncated", "JPEG has no end-of-image marker after its image data (file cut short)")
    if fmt == "PNG" and b"IEND" not in data[-12:] and b"IEND\xaeB`\x82" not in data:
        raise ImageError(name, "truncated", "PNG has no IEND chunk (file cut short)")


def _bits_per_channel(data: bytes, fmt: str | None, header) -> int:
    """Bits per channel the file stores (Pillow opens 16-bit colour PNG as 8-bit "RGB")."""
    if fmt == "PNG" and len(data) > 24:
        return data[24]  # IHDR bit depth
    if fmt == "TIFF":
        bits = header.tag_v2.get(258, (8,))
        return max(bits) if isinstance(bits, tuple) else int(bits)
    return 16 if header.mode in _DEEP_MODES else 8


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
            bits = _bits_per_channel(data, fmt, header)
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
    if pil_mode in _DEEP_MODES or bits > 8:
        raise ImageError(
            name, "unsupported-depth", f"{fmt} with {bits} bits per channel (mode {pil_mode!r}); 8 expected"
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
    """The file's bytes; :class:`ImageError` ``not-a-regular-file`` for a named pipe, socket or
    device (never opened, so reading cannot hang), ``unreadable`` naming the OS error otherwise
    (a broken or looping symbolic link, a permission error)."""
    try:
        st = os.stat(path)  # follows symbolic links
    except OSError as exc:
        what = "broken symbolic link" if os.path.islink(path) and exc.errno == errno.ENOENT else \
            "symbolic link loop" if exc.errno == errno.ELOOP else f"{type(exc).__name__}: {exc.strerror or exc}"
        raise ImageError(path, "unreadable", what) from None
    if stat.S_ISDIR(st.st_mode) and not os.access(path, os.R_OK | os.X_OK):
        raise ImageError(path, "unreadable-folder", "a folder that cannot be listed; files inside not read")
    if not stat.S_ISREG(st.st_mode):
        kind = "named pipe" if stat.S_ISFIFO(st.st_mode) else "socket" if stat.S_ISSOCK(st.st_mode) else \
            "folder" if stat.S_ISDIR(st.st_mode) else "device or special file"
        raise ImageError(path, "not-a-regular-file", f"a {kind}, not a file; not opened")
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ImageError(path, "unreadable", f"{type(exc).__name__}: {exc.strerror or exc}") from None


def to_gray(image: np.ndarray) -> np.ndarray:
    """RGB ``(h, w, 3)`` uint8 -> grayscale ``(h, w)`` uint8 with the same weights as decoding."""
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
