"""The vectorised bootstrap metrics against scikit-learn's own functions, resample by resample."""

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    f1_score,
    matthews_corrcoef,
    precision_score,
    recall_score,
    roc_auc_score,
)

from crackbench.benchmarks.metrics import evaluate, resampled_metrics

SKLEARN = {
    "accuracy": lambda y, p, pred: accuracy_score(y, pred),
    "precision": lambda y, p, pred: precision_score(y, pred, zero_division=0),
    "recall": lambda y, p, pred: recall_score(y, pred, zero_division=0),
    "f1": lambda y, p, pred: f1_score(y, pred, zero_division=0),
    "mcc": lambda y, p, pred: matthews_corrcoef(y, pred),
    "balanced_accuracy": lambda y, p, pred: balanced_accuracy_score(y, pred),
    "roc_auc": lambda y, p, pred: roc_auc_score(y, p),
}


@pytest.mark.parametrize("positive_rate", [0.5, 0.15, 0.03])
def test_resampled_metrics_equal_scikit_learn_on_every_resample(positive_rate):
    rng = np.random.default_rng(1)
    n, boots = 300, 40
    y = (rng.random(n) < positive_rate).astype(int)
    p = np.clip(0.35 * y + rng.random(n) * 0.65, 0, 1).round(2)  # ties on purpose: AUC's average ranks
    pred = (p >= 0.5).astype(int)
    idx = rng.integers(0, n, (boots, n))
    ours = resampled_metrics(y[idx].astype(bool), p[idx], pred[idx].astype(bool))
    for b in range(boots):
        yb, pb, predb = y[idx[b]], p[idx[b]], pred[idx[b]]
        for name, fn in SKLEARN.items():
            if name in ("roc_auc", "balanced_accuracy") and len(set(yb)) < 2:
                continue
            assert ours[name][b] == pytest.approx(fn(yb, pb, predb), abs=1e-12), (name, b)


def test_degenerate_resamples_follow_scikit_learn_conventions():
    y = np.array([[True, True, True]])
    p = np.array([[0.9, 0.2, 0.7]])
    pred = p >= 0.5
    ours = resampled_metrics(y, p, pred)
    assert np.isnan(ours["roc_auc"][0])  # undefined with one class: left out of the interval
    assert ours["precision"][0] == precision_score(y[0], pred[0], zero_division=0)
    assert ours["mcc"][0] == matthews_corrcoef(y[0].astype(int), pred[0].astype(int))


def test_evaluate_point_estimates_are_scikit_learns_and_inside_their_intervals():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 200)
    p = np.clip(0.3 * y + rng.random(200) * 0.7, 0, 1)
    out = evaluate(y, p, n_boot=200, seed=0)
    for name, fn in SKLEARN.items():
        metric = out["metrics"][name]
        assert metric["value"] == pytest.approx(fn(y, p, (p >= 0.5).astype(int)), abs=1e-12)
        assert metric["ci_low"] <= metric["value"] <= metric["ci_high"]
    assert evaluate(y, p, n_boot=200, seed=0) == out  # seeded: the same intervals


def test_imbalanced_sets_are_ranked_by_balanced_accuracy_and_majority_accuracy_is_marked():
    from sklearn.metrics import balanced_accuracy_score

    from crackbench.benchmarks.metrics import evaluate
    from crackbench.benchmarks.report import _model_table, markdown_table, ranking_text

    y = np.array([1] * 17 + [0] * 83)
    lazy = np.zeros(100)  # always "no crack": 83% accurate, balanced accuracy 0.5
    useful = np.r_[np.full(15, 0.9), np.full(2, 0.1), np.full(75, 0.1), np.full(8, 0.9)]  # 90% accurate
    models = []
    for name, proba in (("lazy", lazy), ("useful", useful)):
        ev = evaluate(y, proba, n_boot=50)
        assert ev["metrics"]["balanced_accuracy"]["value"] == pytest.approx(balanced_accuracy_score(y, proba >= 0.5))
        models.append({"name": name, "cross": ev, "latency": {"p50_ms": 1.0}, "throughput_img_s": 1.0,
                       "timings": {}, "model_bytes": 1})
    results = {"models": models}
    header, _, rows, best = _model_table(results, "cross")
    assert [r[1] for r in rows] == ["useful", "lazy"] and best == 0 and "balanced accuracy [95% CI]" in header
    assert rows[1][2].endswith("(not above the majority class)") and "majority" not in rows[0][2]
    assert "17% of these images are cracked: rows are ranked by balanced accuracy" in ranking_text(results, "cross")
    assert "| **best** | useful |" in markdown_table(results, "cross")
