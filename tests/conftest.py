"""Fixtures: every image a test uses is generated here, never copied from ../shared/data."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from crackbench.synthetic import make_synthetic_dataset

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def jpeg_bytes(img: np.ndarray, quality: int = 90) -> bytes:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return buf.tobytes()


def png_bytes(img: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", img)
    assert ok
    return buf.tobytes()


def huge_png_header(width: int = 100_000, height: int = 100_000) -> bytes:
    """A valid PNG signature + IHDR declaring a huge image, with a tiny (bogus) IDAT."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + \
        chunk(b"IEND", b"")


def texture(rng: np.random.Generator, shape=(48, 48, 3)) -> np.ndarray:
    return rng.integers(0, 256, shape, dtype=np.uint8)


@pytest.fixture
def bad_corpus(tmp_path) -> tuple[Path, dict[str, tuple[str, str]]]:
    """A dataset folder full of trouble, and the expected (status, reason) per relative path."""
    rng = np.random.default_rng(0)
    root = tmp_path / "corpus"
    for d in ("Positive", "Negative", "Empty", "Negative/junk", "Negative/.ipynb_checkpoints"):
        (root / d).mkdir(parents=True)
    good = jpeg_bytes(texture(rng))
    files = {
        "Positive/good.jpg": (good, ("used", "")),
        "Positive/truncated.jpg": (good[: len(good) // 2], ("skipped", "truncated")),
        "Positive/zero.jpg": (b"", ("skipped", "empty-file")),
        "Positive/text.jpg": (b"this is not a JPEG at all\n" * 10, ("skipped", "not-an-image")),
        "Positive/alpha.png": (png_bytes(texture(rng, (40, 30, 4))), ("used", "")),
        "Positive/deep16.png": (png_bytes(rng.integers(0, 65535, (20, 20), dtype=np.uint16)),
                                ("skipped", "unsupported-depth")),
        "Negative/gray.jpg": (jpeg_bytes(texture(rng, (33, 41))), ("used", "")),
        "Negative/tiny.png": (png_bytes(np.full((1, 1, 3), 7, np.uint8)), ("used", "")),
        "Negative/huge.png": (huge_png_header(), ("skipped", "too-large")),
        "Negative/bétonfissuré_ñ.jpg": (jpeg_bytes(texture(rng)), ("used", "")),
        "Negative/junk/notes.txt": (b"inspection notes", ("ignored", "not-an-image-extension")),
        "Negative/junk/copy.jpg": (good, ("used", "")),
        "Negative/.DS_Store": (b"\0\0\0\1Bud1", ("ignored", "hidden")),
        "Negative/.ipynb_checkpoints/x.jpg": (good, None),
        "README.txt": (b"dataset readme", ("ignored", "outside-class-folder")),
    }
    expected = {}
    for rel, (data, outcome) in files.items():
        (root / rel).write_bytes(data)
        if outcome is not None:
            expected[rel] = outcome
    expected["Negative/.ipynb_checkpoints/"] = ("ignored", "hidden")
    (root / "Positive" / "dangling.jpg").symlink_to(root / "does-not-exist.jpg")
    expected["Positive/dangling.jpg"] = ("skipped", "unreadable")
    return root, expected


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory) -> Path:
    """600 synthetic 227x227 images (300 per class), shared by the tests of one session."""
    return make_synthetic_dataset(tmp_path_factory.mktemp("synth"), 600, seed=1, progress=False)
