"""The kernels against their references: scikit-image for HOG and LBP, known images for edges."""

import re

import cv2
import numpy as np
import pytest
from skimage.feature import hog as sk_hog
from skimage.feature import local_binary_pattern as sk_lbp

from crackbench.features import (
    edge_feature_names,
    edge_features,
    hog,
    hog_output_length,
    local_binary_pattern,
)
from crackbench.imageio import read_image

from .conftest import SHARED

# scikit-image warns when LBP is given float images; we compare on them on purpose
pytestmark = pytest.mark.filterwarnings("ignore:Applying `local_binary_pattern`:UserWarning")


def _images(rng):
    """Random, low-entropy (many ties), smooth and float images of assorted sizes."""
    yield rng.integers(0, 256, (41, 37), dtype=np.uint8)
    yield rng.integers(0, 3, (30, 33), dtype=np.uint8)
    yield cv2.GaussianBlur(rng.integers(0, 256, (64, 48), dtype=np.uint8), (0, 0), 2)
    yield rng.random((35, 29))
    yield np.full((20, 20), 9, np.uint8)


_GEOMETRIES = [(4, 1), (8, 1), (8, 2.5), (12, 1.5), (16, 2), (24, 3)]


@pytest.mark.parametrize(("P", "R", "method"), [
    (P, R, m) for P, R in _GEOMETRIES for m in ("default", "ror", "uniform", "nri_uniform")
    if P <= 16 or m not in ("default", "ror")  # 2**24 raw labels: no one histograms those
])
def test_lbp_codes_identical_to_skimage(P, R, method):
    for img in _images(np.random.default_rng(P)):
        np.testing.assert_array_equal(local_binary_pattern(img, P, R, method), sk_lbp(img, P, R, method))


@pytest.mark.parametrize(("P", "R"), [(8, 1), (16, 2)])
def test_lbp_var_matches_skimage(P, R):
    for img in _images(np.random.default_rng(0)):
        np.testing.assert_allclose(local_binary_pattern(img, P, R, "var"), sk_lbp(img, P, R, "var"),
                                   rtol=1e-8, atol=1e-9)


@pytest.mark.parametrize("kwargs", [
    {},
    {"pixels_per_cell": (16, 16), "cells_per_block": (2, 2)},
    {"orientations": 8, "pixels_per_cell": (7, 9), "cells_per_block": (2, 3), "block_norm": "L1"},
    {"orientations": 12, "block_norm": "L2", "pixels_per_cell": (6, 6)},
    {"block_norm": "L1-sqrt", "transform_sqrt": True, "pixels_per_cell": (5, 5), "cells_per_block": (1, 1)},
])
def test_hog_matches_skimage(kwargs):
    rng = np.random.default_rng(1)
    for img in [rng.integers(0, 256, (70, 61), dtype=np.uint8), rng.random((48, 52)),
                cv2.GaussianBlur(rng.integers(0, 256, (64, 64), dtype=np.uint8), (0, 0), 1.5)]:
        ours, ref = hog(img, **kwargs), sk_hog(img, **kwargs)
        assert ours.shape == ref.shape == (hog_output_length(img.shape, kwargs.get("orientations", 9),
                                                             kwargs.get("pixels_per_cell", (8, 8)),
                                                             kwargs.get("cells_per_block", (3, 3))),)
        # scikit-image sums cells in float32, we in float64
        np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-6)
    rgb = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    np.testing.assert_allclose(hog(rgb, channel_axis=-1, **kwargs), sk_hog(rgb, channel_axis=-1, **kwargs),
                               rtol=1e-5, atol=1e-6)


def test_hog_known_response_and_brightness_offset():
    ramp = np.tile(np.arange(64, dtype=np.uint8) * 3, (64, 1))  # intensity grows left to right
    f = hog(ramp, orientations=9, pixels_per_cell=(8, 8), cells_per_block=(1, 1), block_norm="L1")
    cells = f.reshape(-1, 9)
    inner = cells.reshape(8, 8, 9)[:, 1:-1]  # away from the zero-gradient border columns
    assert (inner[..., 0] > 0.99).all()  # a horizontal gradient is orientation 0
    np.testing.assert_array_equal(hog(ramp), hog(ramp + 20))


def test_kernels_reject_bad_input():
    with pytest.raises(ValueError, match="too small"):
        hog(np.zeros((10, 10), np.uint8))
    with pytest.raises(ValueError, match="block_norm"):
        hog(np.zeros((32, 32), np.uint8), block_norm="L3")
    with pytest.raises(ValueError, match="2-D grayscale"):
        local_binary_pattern(np.zeros((5, 5, 3)), 8, 1)
    with pytest.raises(ValueError, match="method"):
        local_binary_pattern(np.zeros((5, 5)), 8, 1, "fancy")
    with pytest.raises(ValueError, match="uint8"):
        edge_features(np.zeros((5, 5)))


def test_kernels_follow_scikit_image_conventions():
    """dtype out, the floating-point LBP warning and the too-small message, as scikit-image."""
    rng = np.random.default_rng(0)
    img = rng.random((64, 64)).astype(np.float32)
    assert hog(img).dtype == sk_hog(img).dtype == np.float32
    assert hog(img.astype(np.float64)).dtype == np.float64 and hog((img * 255).astype(np.uint8)).dtype == np.float64
    np.testing.assert_allclose(hog(img), sk_hog(img), rtol=1e-4, atol=1e-6)
    with pytest.warns(UserWarning, match="floating-point images") as ours:
        local_binary_pattern(img.astype(np.float64), 8, 1)
    with pytest.warns(UserWarning, match="floating-point images") as theirs:
        sk_lbp(img.astype(np.float64), 8, 1)
    assert str(ours[0].message) == str(theirs[0].message)
    with pytest.raises(ValueError) as ours_small:
        hog(np.zeros((10, 10), np.uint8))
    with pytest.raises(ValueError) as theirs_small:
        sk_hog(np.zeros((10, 10), np.uint8))
    assert str(theirs_small.value) in str(ours_small.value) and "Got 10x10" in str(ours_small.value)


def _line_image(with_line: bool, angle_deg: float = 30.0) -> np.ndarray:
    rng = np.random.default_rng(5)
    img = np.clip(rng.normal(150, 4, (128, 128)), 0, 255).astype(np.uint8)
    if with_line:
        t = np.deg2rad(angle_deg)
        p = (int(64 - 90 * np.cos(t)), int(64 + 90 * np.sin(t)))
        q = (int(64 + 90 * np.cos(t)), int(64 - 90 * np.sin(t)))
        cv2.line(img, p, q, 60, 2, cv2.LINE_AA)
    return img


def test_edge_features_see_a_dark_line():
    names = edge_feature_names()
    clean, line = (dict(zip(names, edge_features(_line_image(w)), strict=True)) for w in (False, True))
    assert len(names) == len(set(names)) == len(edge_features(_line_image(False)))
    assert clean["edge_canny_density_t120"] == 0 and line["edge_canny_density_t120"] > 0.005
    assert line["edge_darkline_k7_frac_t20"] > 0.01 > clean["edge_darkline_k7_frac_t20"]
    assert line["edge_orient_coherence"] > clean["edge_orient_coherence"] + 0.2
    assert line["edge_intensity_p05"] < clean["edge_intensity_p05"]
    # the line rises at 30 degrees, i.e. direction -30 in image coordinates (y down); its gradient
    # is perpendicular, at 60 degrees: the 45-67.5 bin dominates
    orient = {k: v for k, v in line.items() if k.startswith("edge_orient_") and k[-1].isdigit()}
    assert max(orient, key=orient.get) == "edge_orient_045"
    hist = [v for k, v in clean.items() if re.fullmatch(r"edge_gradmag_\d{3}_(\d{3}|inf)", k)]
    assert len(hist) == 8
    assert sum(hist) == pytest.approx(1.0)


def test_edge_features_do_not_depend_on_memory_alignment():
    img = _line_image(True)
    ref = edge_features(img)
    for offset in range(1, 8):
        buf = np.empty(img.size + offset, np.uint8)
        shifted = buf[offset:].reshape(img.shape)
        shifted[:] = img
        np.testing.assert_array_equal(edge_features(shifted), ref)


@pytest.mark.realdata
def test_lbp_identical_to_skimage_on_real_images():
    folder = SHARED / "concrete-crack-sample" / "Positive"
    if not folder.is_dir():
        pytest.skip(f"real data not present at {folder}")
    for path in sorted(folder.glob("*.jpg"))[:3]:
        img = read_image(path, mode="gray")
        for P, R in [(8, 1), (16, 2), (24, 3)]:
            np.testing.assert_array_equal(local_binary_pattern(img, P, R, "uniform"),
                                          sk_lbp(img, P, R, "uniform"))
        np.testing.assert_allclose(hog(img), sk_hog(img), rtol=1e-5, atol=1e-6)
