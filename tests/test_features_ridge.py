"""The ridge (thin dark line) kernel and the normalising / multi-scale wrappers."""

import cv2
import numpy as np
import pytest

from crackbench.features import (
    Augmented,
    EdgeFeatures,
    LBPFeatures,
    MultiScale,
    Normalized,
    augment_image,
    normalize_image,
    ridge_feature_names,
    ridge_features,
    ridge_response,
)


def _surface(seed=0, size=160, line_width=None, mean=150.0, contrast=12.0):
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.normal(0, 1, (size, size)).astype(np.float32), (0, 0), 1.5)
    img = mean + contrast * img / img.std()
    if line_width:
        line = np.zeros((size, size), np.uint8)
        cv2.line(line, (10, 20), (size - 15, size - 30), 255, line_width)
        img[line > 0] -= 60
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("width, texture_percentile", [(1, 90), (3, 99), (7, 99)])
def test_a_dark_line_of_any_width_stands_out_from_texture(width, texture_percentile):
    # a 1-px line is blurred by the finest scale (sigma 1): it beats 90% of the texture, wider ones 99%
    img = _surface(line_width=width)
    r = ridge_response(img)
    line = np.zeros(img.shape, np.uint8)
    cv2.line(line, (10, 20), (img.shape[1] - 15, img.shape[0] - 30), 255, 1)  # the centre line
    on = np.median(r[line > 0])
    off = np.percentile(r[cv2.dilate(line, np.ones((25, 25))) == 0], texture_percentile)
    assert on > 1.5 * off, (on, off)


def test_brightness_and_contrast_do_not_move_the_response():
    img = _surface(line_width=3)
    darker = np.clip(img.astype(np.float32) * 0.5 + 20, 0, 255).astype(np.uint8)  # half the contrast, dimmer
    a, b = ridge_features(img), ridge_features(darker)
    np.testing.assert_allclose(a[:7], b[:7], rtol=0.15, atol=0.05)  # percentiles, up to 8-bit rounding


def test_line_length_features_tell_a_line_from_texture():
    names = ridge_feature_names()
    plain, cracked = ridge_features(_surface(seed=1)), ridge_features(_surface(seed=1, line_width=3))
    assert len(plain) == len(names) == len(set(names))
    longest = names.index("ridge_t4_longest")
    assert cracked[longest] > 0.6 and plain[longest] < 0.2


@pytest.mark.parametrize("method, kept", [("stretch", 0.75), ("clahe", 0.4), ("standardize", 0.75)])
def test_normalised_images_forget_most_of_the_contrast(method, kept):
    img = _surface(line_width=3, contrast=30)
    flat = np.clip(img.astype(np.float32) * 0.3 + 100, 0, 255).astype(np.uint8)  # 30% of the contrast
    a, b = normalize_image(img, method), normalize_image(flat, method)
    assert a.dtype == np.uint8 and a.shape == img.shape
    assert float(b.std()) > kept * float(a.std())  # CLAHE's clip limit restores contrast only in part
    with pytest.raises(ValueError, match="unknown normalisation"):
        normalize_image(img, "gamma")


def test_wrappers_compose_with_the_extractors():
    stack = np.stack([_surface(seed=s, size=96, line_width=3) for s in range(3)])
    n = Normalized(EdgeFeatures(), "standardize")
    np.testing.assert_array_equal(n.transform(stack), EdgeFeatures().transform(
        [normalize_image(im, "standardize") for im in stack]))
    assert list(n.get_feature_names_out()) == list(EdgeFeatures().get_feature_names_out())
    m = MultiScale(LBPFeatures(), (1.0, 0.5))
    out = m.transform(stack)
    half = [cv2.resize(im, (48, 48), interpolation=cv2.INTER_AREA) for im in stack]
    np.testing.assert_array_equal(out[:, out.shape[1] // 2:], LBPFeatures().transform(half))
    assert m.get_feature_names_out()[-1].endswith("_s0.5") and out.shape[1] == len(m.get_feature_names_out())


def test_augmented_copies_look_farther_away_and_fainter():
    img = np.full((100, 100), 180, np.uint8)
    img[:, 40:48] = 40  # a vertical crack 8 px wide
    zoom = augment_image(img, "zoom")
    assert zoom.shape == img.shape and zoom.dtype == np.uint8
    dark = (zoom[50] < 110).sum()
    assert dark == 8  # two mirrored cracks of 4 px: half as wide, twice as many
    faint = augment_image(img, "faint")
    assert int(faint.max()) - int(faint.min()) == pytest.approx((180 - 40) / 2, abs=1)
    both = Augmented(EdgeFeatures(), "zoom+faint").transform([img])
    np.testing.assert_array_equal(both, EdgeFeatures().transform([augment_image(img, "zoom+faint")]))
    with pytest.raises(ValueError, match="unknown augmentation"):
        augment_image(img, "rotate")
