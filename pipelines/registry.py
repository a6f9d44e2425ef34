"""Named classical pipelines: features -> scaling -> optional reduction -> classifier.

Every pipeline is a :class:`sklearn.pipeline.Pipeline` with the steps ``features``, ``scale``,
``reduce`` and ``clf`` (``"passthrough"`` where a step does not apply, e.g. scaling before a
random forest), so tools can address steps by name whatever the model.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.decomposition import PCA
from sklearn.ensemble import RandomForestClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC, LinearSVC

from crackbench.features import make_feature_set

__all__ = ["PIPELINES", "PipelineSpec", "make_pipeline"]


@dataclass(frozen=True)
class PipelineSpec:
    """How to build one named pipeline and the small grid searched on the validation split."""

    name: str
    features: str
    classifier: str  # "svm" | "linsvm" | "rf"
    description: str
    pca: int | None = None
    grid: dict = field(default_factory=dict)
    #: add an augmented copy of every training image (crackbench.features.augment_image), or None
    augment: str | None = None

    @property
    def calibrated(self) -> bool:
        """SVMs give scores, not probabilities: their scores are calibrated (sigmoid) on val."""
        return self.classifier in ("svm", "linsvm")


def _svm_grid():
    return {"clf__C": [1.0, 10.0]}


def _rf_grid():
    return {"clf__min_samples_leaf": [1, 3]}


_SPECS = [
    PipelineSpec("hog-svm", "hog", "svm", "HOG -> standardise -> PCA(128) -> RBF SVM", pca=128,
                 grid=_svm_grid()),
    PipelineSpec("hog-linsvm", "hog", "linsvm", "HOG -> standardise -> linear SVM (all 1,764 dims)",
                 grid={"clf__C": [0.001, 0.01, 0.1]}),
    PipelineSpec("hog-rf", "hog", "rf", "HOG -> random forest (300 trees)", grid=_rf_grid()),
    PipelineSpec("lbp-svm", "lbp", "svm", "LBP histograms -> standardise -> RBF SVM",
                 grid={"clf__C": [1.0, 10.0, 100.0]}),
    PipelineSpec("lbp-rf", "lbp", "rf", "LBP histograms -> random forest (300 trees)", grid=_rf_grid()),
    PipelineSpec("edges-svm", "edges", "svm", "edge statistics -> standardise -> RBF SVM",
                 grid={"clf__C": [1.0, 10.0, 100.0]}),
    PipelineSpec("edges-rf", "edges", "rf", "edge statistics -> random forest (300 trees)", grid=_rf_grid()),
    PipelineSpec("combined-svm", "combined", "svm",
                 "HOG+LBP+edges -> standardise -> PCA(64, whitened) of the HOG block only -> RBF SVM",
                 pca=64, grid=_svm_grid()),
    PipelineSpec("combined-rf", "combined", "rf", "HOG+LBP+edges -> random forest (300 trees)",
                 grid=_rf_grid()),
]
_SPECS += [
    PipelineSpec("robust-svm", "robust", "svm", "edge statistics + ridge (thin dark line) features -> standardise "
                 "-> RBF SVM, trained with zoomed-out copies; the transfer study's best SVM",
                 grid={"clf__C": [1.0, 10.0, 100.0]}, augment="zoom"),
    PipelineSpec("robust-rf", "robust", "rf", "edge statistics + ridge (thin dark line) features -> random forest "
                 "(300 trees), trained with zoomed-out copies; the transfer study's choice", grid=_rf_grid(),
                 augment="zoom"),
]
PIPELINES: dict[str, PipelineSpec] = {s.name: s for s in _SPECS}


def make_pipeline(name: str, *, random_state: int = 0, n_jobs: int | None = None) -> Pipeline:
    """A fresh, unfitted pipeline for one of :data:`PIPELINES`' names.

    ``n_jobs`` is passed to random forests (training and prediction threads).
    """
    try:
        spec = PIPELINES[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; expected one of {sorted(PIPELINES)} "
                         f"(or 'cnn')") from None
    if spec.classifier == "rf":
        clf = RandomForestClassifier(n_estimators=300, max_features="sqrt", n_jobs=n_jobs,
                                     random_state=random_state)
    elif spec.classifier == "linsvm":
        clf = LinearSVC(C=0.01, max_iter=20_000, random_state=random_state)
    else:
        clf = SVC(kernel="rbf", C=10.0, gamma="scale", random_state=random_state)
    features = make_feature_set(spec.features)
    scale = "passthrough" if spec.classifier == "rf" else StandardScaler()
    reduce = "passthrough"
    if spec.pca and spec.features == "combined":
        # 1,764 HOG columns would drown the 67 LBP and edge columns: reduce the HOG block alone
        n_hog = len(features.transformer_list[0][1].get_feature_names_out())
        reduce = ColumnTransformer([("hog", PCA(spec.pca, whiten=True, random_state=random_state),
                                     np.arange(n_hog))], remainder="passthrough")
    elif spec.pca:
        reduce = PCA(n_components=spec.pca, random_state=random_state)
    return Pipeline([("features", features), ("scale", scale), ("reduce", reduce), ("clf", clf)])
