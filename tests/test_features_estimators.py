import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

from crackbench.features import (
    FEATURE_SETS,
    Augmented,
    EdgeFeatures,
    HOGFeatures,
    LBPFeatures,
    MultiScale,
    Normalized,
    RidgeFeatures,
    combined_features,
    hog,
    make_feature_set,
)

ESTIMATORS = [HOGFeatures, LBPFeatures, EdgeFeatures]


@pytest.fixture
def stack():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (6, 40, 44), dtype=np.uint8)


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_transformer_contract(cls, stack):
    est = cls()
    assert est.fit(stack) is est
    out = est.transform(stack)
    assert out.dtype == np.float32 and out.shape[0] == 6
    names = est.get_feature_names_out()
    assert len(names) == out.shape[1] == len(set(names))
    np.testing.assert_array_equal(cls().transform(stack), out)  # stateless: no fit needed
    np.testing.assert_array_equal(clone(est).fit_transform(stack), out)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(est)).transform(stack), out)


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_params_stored_unchanged(cls):
    est = cls()
    params = est.get_params()
    assert params == cls(**params).get_params()
    est.set_params(image_size=(64, 64))
    assert est.image_size == (64, 64)


def test_rgb_float_and_list_inputs_agree(stack):
    rgb = np.repeat(stack[..., None], 3, axis=-1)
    est = combined_features()
    ref = est.transform(stack)
    np.testing.assert_array_equal(est.transform(rgb), ref)
    np.testing.assert_array_equal(est.transform(list(stack)), ref)
    np.testing.assert_array_equal(est.transform(stack / 255.0), ref)


def test_list_of_different_sizes():
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, s, dtype=np.uint8) for s in [(30, 40), (227, 227), (50, 35, 3)]]
    n_features = combined_features().get_feature_names_out().size
    assert combined_features().transform(images).shape == (3, n_features)
    with pytest.raises(ValueError, match="one size"):
        HOGFeatures(image_size=None).transform(images)


def test_hog_features_use_the_kernel(stack):
    est = HOGFeatures(image_size=None, pixels_per_cell=(8, 8), cells_per_block=(2, 2))
    np.testing.assert_allclose(est.transform(stack[:1])[0], hog(stack[0], 9, (8, 8), (2, 2)), rtol=1e-6)


@pytest.mark.parametrize(("bad", "match"), [
    (np.zeros((227, 227), np.uint8),
     r"expected images of shape \(n, h, w\) or \(n, h, w, 3\), got \(227, 227\)"),
    (np.zeros((2, 8, 8, 4), np.uint8), "got"),
    (np.zeros((0, 8, 8), np.uint8), "at least one image"),
    ([], "at least one image"),
    (np.full((1, 8, 8), 2.0), r"values in \[0, 1\]"),
    (np.full((1, 8, 8), np.nan), "NaN"),
    (np.full((1, 8, 8), 300, np.int32), r"\[0, 255\]"),
    (np.zeros((1, 8, 8), bool), "dtype bool"),
    ("images/", "list of image arrays"),
])
def test_bad_input_clear_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        LBPFeatures().transform(bad)


def test_bad_params_rejected_at_fit_not_init(stack):
    est = LBPFeatures(method="fancy")  # __init__ stores, does not validate
    with pytest.raises(ValueError, match="method"):
        est.fit(stack)


def test_feature_union_names_and_pipeline_grid_search():
    rng = np.random.default_rng(2)
    X = rng.integers(90, 110, (40, 32, 32), dtype=np.uint8)
    y = np.arange(40) % 2
    X[y == 1, 14:18, :] = 30  # a dark horizontal band: easy
    union = FeatureUnion([("lbp", LBPFeatures(radii=(1,))), ("edges", EdgeFeatures())],
                         verbose_feature_names_out=False)
    names = list(union.fit(X).get_feature_names_out())
    assert names[0] == "lbp_r1_u0" and "edge_canny_density_t60" in names
    pipe = Pipeline([("features", union), ("clf", LogisticRegression(max_iter=2000))])
    search = GridSearchCV(pipe, {"features__lbp__radii": [(1,), (1, 2)], "clf__C": [0.1, 1.0]}, cv=2)
    search.fit(X, y)
    assert search.best_score_ > 0.9


def test_feature_set_registry():
    assert set(FEATURE_SETS) == {"hog", "lbp", "edges", "combined", "ridge", "robust"}
    assert isinstance(make_feature_set("combined"), FeatureUnion)
    with pytest.raises(ValueError, match="unknown feature set"):
        make_feature_set("sift")


_SKLEARN_DATA_FREE_CHECKS = [
    "check_no_attributes_set_in_init", "check_parameters_default_constructible", "check_get_params_invariance",
    "check_set_params", "check_estimator_repr", "check_estimator_cloneable",
    "check_do_not_raise_errors_in_init_or_set_params", "check_valid_tag_types", "check_mixin_order",
    "check_estimator_tags_renamed", "check_param_validation", "check_transformer_n_iter",
]


@parametrize_with_checks([HOGFeatures(), LBPFeatures(), EdgeFeatures(), RidgeFeatures()])
def test_scikit_learn_estimator_checks(estimator, check):
    """scikit-learn's own suite. It runs the checks that apply to estimators tagged as taking 3-D
    input (``three_d_array``) and skips those that feed 2-D feature matrices."""
    check(estimator)


ALL_EXTRACTORS = [HOGFeatures(), LBPFeatures(), EdgeFeatures(), RidgeFeatures(), Normalized(EdgeFeatures(), "clahe"),
                  MultiScale(LBPFeatures(), (1.0, 0.5)), Augmented(EdgeFeatures(), "zoom")]


@pytest.mark.parametrize("check_name", _SKLEARN_DATA_FREE_CHECKS)
@pytest.mark.parametrize("estimator", ALL_EXTRACTORS, ids=type)
def test_scikit_learn_api_checks_that_need_no_2d_data(estimator, check_name):
    """The checks of scikit-learn's suite that do not feed 2-D tables, run directly (the suite
    skips them all for an image transformer)."""
    import sklearn.utils.estimator_checks as checks

    getattr(checks, check_name)(type(estimator).__name__, estimator)


@pytest.mark.parametrize("estimator", ALL_EXTRACTORS, ids=type)
def test_data_checks_on_images(estimator):
    """What scikit-learn's data checks assert, on image stacks: fit returns self and changes no
    parameter, read-only (memory-mapped) input works, transform is deterministic, clones agree."""
    from sklearn.base import clone

    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (4, 64, 64), dtype=np.uint8)
    params = estimator.get_params()
    assert estimator.fit(X) is estimator and estimator.get_params() == params
    readonly = X.copy()
    readonly.flags.writeable = False
    out = estimator.transform(readonly)
    np.testing.assert_array_equal(out, estimator.transform(X))
    np.testing.assert_array_equal(clone(estimator).fit_transform(X), out)
    assert out.dtype == np.float32 and out.shape == (4, len(estimator.get_feature_names_out()))
