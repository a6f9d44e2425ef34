"""Low-latency scoring of a fitted pipeline tail (scale -> reduce -> clf) for a few rows.

scikit-learn validates inputs and fitted state on every call, through every step and every
wrapper: for one image through ``StandardScaler -> ColumnTransformer(PCA) ->
CalibratedClassifierCV(FrozenEstimator(SVC))`` that costs ~2 ms, the arithmetic ~0.2 ms
(``python -m crackbench.benchmarks.latency`` prints both). :func:`compile_tail` rebuilds the
arithmetic of the fitted step types crackbench's pipelines use as plain NumPy functions of
their fitted attributes, in scikit-learn's order of operations (scaling and PCA give the same
bits; the RBF kernel, computed from squared norms rather than libsvm's loop, agrees to ~1e-14).
The result is checked against scikit-learn on probe rows when it is built; any other step
type, a fitted attribute this scikit-learn version does not have, or a disagreement returns
``None`` (with the reason) and the caller keeps scikit-learn's own path.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.special import expit
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.decomposition import PCA
from sklearn.frozen import FrozenEstimator
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from sklearn.svm import SVC, LinearSVC

__all__ = ["compile_tail"]

#: Above this many rows, scikit-learn's per-call cost is amortised: callers use its path.
MAX_ROWS = 16


def _scaler(s: StandardScaler):
    mean, scale = s.mean_, s.scale_

    def cast_first(X):  # scikit-learn >= 1.7: statistics cast to the input's dtype
        X = X.copy()
        if mean is not None:
            X -= mean.astype(X.dtype)
        if scale is not None:
            X /= scale.astype(X.dtype)
        return X

    def float64_first(X):  # scikit-learn 1.6: float64 statistics applied in place to float32 rows
        X = X.copy()
        if mean is not None:
            X -= mean
        if scale is not None:
            X /= scale
        return X

    # the order of operations of the installed version: the one that gives its bits on a probe row
    probe = ((mean if mean is not None else 0) + np.linspace(-3, 3, s.n_features_in_)
             * (scale if scale is not None else 1)).astype(np.float32)[None, :]
    expected = s.transform(probe)
    return next((fn for fn in (cast_first, float64_first) if np.array_equal(fn(probe), expected)), cast_first)


def _pca(p: PCA):
    components_t = p.components_.T
    offset = p.mean_.reshape(1, -1) @ components_t
    scale = None
    if p.whiten:
        scale = np.sqrt(p.explained_variance_)
        scale[scale < np.finfo(scale.dtype).eps] = np.finfo(scale.dtype).eps

    def transform(X):
        Xt = X @ components_t
        Xt -= offset
        if scale is not None:
            Xt /= scale
        return Xt
    return transform


def _column_transformer(ct: ColumnTransformer):
    parts = []
    for _, trans, cols in ct.transformers_:
        if isinstance(trans, str) and trans == "drop":
            continue
        cols = np.asarray(cols)
        if cols.dtype.kind not in "iu" and cols.dtype != bool:
            return None
        fn = _transformer(trans)
        if fn is None:
            return None
        parts.append((cols, fn))

    def transform(X):
        return np.hstack([fn(X[:, cols]) for cols, fn in parts])
    return transform


def _transformer(step) -> Callable | None:
    if (step is None or (isinstance(step, str) and step == "passthrough")
            or (type(step) is FunctionTransformer and step.func is None)):  # a fitted "passthrough"
        return lambda X: X
    if type(step) is StandardScaler:
        return _scaler(step)
    if type(step) is PCA:
        return _pca(step)
    if type(step) is ColumnTransformer:
        return _column_transformer(step)
    return None


def _decision(clf) -> Callable | None:
    if isinstance(clf, FrozenEstimator):
        clf = clf.estimator
    if type(clf) is LinearSVC and len(clf.classes_) == 2:
        coef_t, intercept = clf.coef_.T, clf.intercept_
        return lambda X: (X @ coef_t + intercept).ravel()
    if type(clf) is SVC and clf.kernel == "rbf" and len(clf.classes_) == 2:
        sv, dual, intercept, gamma = clf.support_vectors_, clf.dual_coef_.ravel(), clf.intercept_[0], clf._gamma
        sv_sq = np.einsum("ij,ij->i", sv, sv)

        def decision(X):
            X = np.asarray(X, dtype=np.float64)
            d2 = np.einsum("ij,ij->i", X, X)[:, None] + sv_sq[None, :] - 2.0 * (X @ sv.T)
            np.maximum(d2, 0.0, out=d2)
            return np.exp(-gamma * d2) @ dual + intercept
        return decision
    return None


def _positive_proba(clf) -> Callable | None:
    if type(clf) is CalibratedClassifierCV and clf.method == "sigmoid" and len(clf.classes_) == 2:
        parts = []
        for cc in clf.calibrated_classifiers_:
            decision = _decision(cc.estimator)
            if decision is None or len(cc.calibrators) != 1:
                return None
            parts.append((decision, cc.calibrators[0].a_, cc.calibrators[0].b_))

        def proba(X):
            return np.mean([expit(-(a * dec(X) + b)) for dec, a, b in parts], axis=0)
        return proba
    return None


def compile_tail(tail: Pipeline, *, rtol: float = 1e-9) -> tuple[Callable | None, str]:
    """``(fn, "")`` where ``fn(X)`` computes ``tail.predict_proba(X)[:, 1]`` without scikit-learn's
    per-call validation; ``(None, "")`` where ``tail`` holds a step type this module does not cover;
    ``(None, reason)`` where it should apply but cannot: a fitted attribute is missing (another
    scikit-learn version) or the result disagrees with scikit-learn (relative tolerance ``rtol``)
    on probe rows. Meant for up to :data:`MAX_ROWS` finite rows that scikit-learn already accepts.
    """
    try:  # everything that reads fitted attributes, private ones included, stays in here
        fns = [_transformer(step) for _, step in tail.steps[:-1]]
        proba = _positive_proba(tail.steps[-1][1])
        first = tail.steps[0][1]
        n_features = getattr(first, "n_features_in_", None)
        if proba is None or n_features is None or any(fn is None for fn in fns):
            return None, ""  # not a tail this module covers (a random forest, say): nothing went wrong

        def positive_proba(X):
            for fn in fns:
                X = fn(X)
            return proba(X)

        # probe around the scaler's statistics when there is one, else standard normal rows
        probe = np.random.default_rng(0).standard_normal((MAX_ROWS, n_features))
        if type(first) is StandardScaler and first.mean_ is not None and first.scale_ is not None:
            probe = first.mean_ + probe * first.scale_
        probe = probe.astype(np.float32)
        # MAX_ROWS rows and one row: BLAS takes different paths for the two
        agree = all(np.allclose(positive_proba(rows), tail.predict_proba(rows)[:, 1], rtol=rtol, atol=1e-12)
                    for rows in (probe, probe[:1]))
    except Exception as exc:  # an attribute layout this scikit-learn version does not have
        return None, f"{type(exc).__name__}: {exc}"
    return (positive_proba, "") if agree else (None, f"disagrees with scikit-learn beyond rtol={rtol}")
