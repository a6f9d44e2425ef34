import numpy as np
import pytest

from crackbench.imageio import ImageError, decode_image, read_image, to_gray

from .conftest import huge_png_header, jpeg_bytes, png_bytes


def test_decode_returns_rgb_uint8_not_bgr():
    bgr = np.zeros((8, 8, 3), np.uint8)
    bgr[..., 2] = 255  # pure red in OpenCV's BGR order
    rgb = decode_image(png_bytes(bgr))
    assert rgb.dtype == np.uint8 and rgb.shape == (8, 8, 3) and rgb.flags.c_contiguous
    assert (rgb[..., 0] == 255).all() and (rgb[..., 2] == 0).all()


def test_gray_mode_matches_to_gray_of_rgb():
    rng = np.random.default_rng(0)
    data = jpeg_bytes(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8))
    np.testing.assert_array_equal(decode_image(data, mode="gray"), to_gray(decode_image(data)))


def test_alpha_dropped_and_gray_expanded():
    rgba = np.dstack([np.full((5, 6, 3), 100, np.uint8), np.zeros((5, 6), np.uint8)])
    assert decode_image(png_bytes(rgba)).shape == (5, 6, 3)
    gray = decode_image(png_bytes(np.full((5, 6), 42, np.uint8)))
    assert gray.shape == (5, 6, 3) and (gray == 42).all()


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty-file"),
        (b"GIF89a-but-not-really" * 3, "not-an-image"),
        (png_bytes(np.zeros((4, 4), np.uint16)), "unsupported-depth"),
        (huge_png_header(), "too-large"),
    ],
)
def test_bad_bytes_raise_with_reason(data, reason):
    with pytest.raises(ImageError) as err:
        decode_image(data, name="x.img")
    assert err.value.reason == reason and "x.img" in str(err.value)


def test_truncated_jpeg_and_png_detected():
    img = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    for data in (jpeg_bytes(img), png_bytes(img)):
        with pytest.raises(ImageError) as err:
            decode_image(data[: len(data) - 40])
        assert err.value.reason == "truncated"


def test_pixel_limit_is_configurable():
    data = png_bytes(np.zeros((10, 10, 3), np.uint8))
    assert decode_image(data, max_pixels=100).shape == (10, 10, 3)
    with pytest.raises(ImageError, match="too-large"):
        decode_image(data, max_pixels=99)


def test_read_image_missing_file_is_unreadable(tmp_path):
    with pytest.raises(ImageError) as err:
        read_image(tmp_path / "nope.jpg")
    assert err.value.reason == "unreadable"


def test_mode_is_validated():
    with pytest.raises(ValueError, match="mode must be"):
        decode_image(b"x", mode="bgr")
