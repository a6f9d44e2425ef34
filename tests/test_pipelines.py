import json
import zipfile

import numpy as np
import pandas as pd
import pytest
from sklearn.pipeline import Pipeline

from crackbench.cli import main
from crackbench.dataset import DataError, scan_dataset
from crackbench.imageio import read_image
from crackbench.manifest import read_manifest, split_dataset, write_manifest
from crackbench.model import predict_files
from crackbench.pipelines import PIPELINES, UntrustedModelError, load_model, make_pipeline, save_model
from crackbench.pipelines import train_classical as _train


@pytest.fixture(scope="module")
def synth_manifest(synth_dir, tmp_path_factory):
    frame = split_dataset(scan_dataset(synth_dir, progress=False), seed=0)
    return write_manifest(frame, tmp_path_factory.mktemp("manifest") / "manifest.csv")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def trained(synth_manifest, cache):
    """Every registered pipeline trained once on the synthetic set (features shared via cache)."""
    return {name: _train(name, synth_manifest, cache_dir=cache, n_jobs=2, progress=False)
            for name in PIPELINES}


def _test_split(manifest_path):
    frame = read_manifest(manifest_path)
    test = frame[frame["split"] == "test"]
    return list(test["path"]), (test["label"] == "Positive").to_numpy()


def test_registry_shapes():
    assert {"hog-svm", "hog-rf", "lbp-svm", "lbp-rf", "edges-svm", "edges-rf", "combined-svm",
            "combined-rf", "hog-linsvm"} <= set(PIPELINES)
    for name in PIPELINES:
        pipe = make_pipeline(name)
        assert isinstance(pipe, Pipeline) and list(pipe.named_steps) == ["features", "scale", "reduce", "clf"]
    with pytest.raises(ValueError, match="unknown model"):
        make_pipeline("deep-magic")


def test_every_pipeline_beats_chance_and_the_best_exceeds_90(trained, synth_manifest):
    paths, y = _test_split(synth_manifest)
    accuracy = {name: float((model.predict_proba(paths)[:, 1] >= 0.5).__eq__(y).mean())
                for name, model in trained.items()}
    assert min(accuracy.values()) > 0.70, accuracy  # chance is 0.50
    assert max(accuracy.values()) > 0.90, accuracy


def test_augmented_pipelines_train_on_twice_the_rows_and_never_augment_when_predicting(trained):
    robust = trained["robust-svm"]
    assert robust.metadata["train_augmentation"] == "zoom"
    assert trained["edges-svm"].metadata["train_augmentation"] is None
    svm = robust.pipeline[-1].calibrated_classifiers_[0].estimator.estimator
    n_columns = len(robust.pipeline.named_steps["features"].get_feature_names_out())  # edges + ridge
    assert svm.shape_fit_ == (2 * robust.metadata["n_train"], n_columns)
    assert type(robust.pipeline.named_steps["features"]).__name__ == "FeatureUnion"  # no Augmented step inside


def test_metadata_and_train_only_policy(trained, synth_manifest):
    meta = trained["lbp-svm"].metadata
    assert meta["classes"] == ["Negative", "Positive"] and meta["positive_class"] == "Positive"
    assert meta["n_train"] == 420 and meta["n_val"] == 90
    assert len(meta["search"]) == 3 and meta["best_params"] in [s["params"] for s in meta["search"]]
    assert 0.5 < meta["val_metrics"]["accuracy"] <= 1 and meta["timings"]["train_s"] > 0
    assert len(meta["manifest_sha256"]) == 64
    json.dumps(meta)  # plain data only


def test_same_seed_same_model(trained, synth_manifest, cache):
    paths, _ = _test_split(synth_manifest)
    again = _train("combined-svm", synth_manifest, cache_dir=cache, n_jobs=1, progress=False)
    np.testing.assert_array_equal(again.predict_proba(paths), trained["combined-svm"].predict_proba(paths))


@pytest.mark.parametrize("name", ["hog-svm", "edges-rf", "combined-svm", "hog-linsvm", "robust-svm"])
def test_save_load_identical_predictions(trained, synth_manifest, tmp_path, name):
    paths, _ = _test_split(synth_manifest)
    path = save_model(trained[name], tmp_path / f"{name}.skops")
    loaded = load_model(path)
    assert loaded.metadata == trained[name].metadata
    np.testing.assert_array_equal(loaded.predict_proba(paths), trained[name].predict_proba(paths))
    images = [read_image(p) for p in paths[:5]]  # RGB arrays give what the files give
    np.testing.assert_array_equal(loaded.predict_proba(images), loaded.predict_proba(paths[:5]))
    assert set(loaded.predict(paths[:5])) <= {"Negative", "Positive"}


def _tamper(src, dst, old: str, new: str):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "schema.json":
                text = data.decode()
                assert old in text
                data = text.replace(old, new, 1).encode()
            zout.writestr(item, data)


def test_tampered_model_file_is_refused(trained, tmp_path):
    good = save_model(trained["lbp-svm"], tmp_path / "good.skops")
    bad = tmp_path / "bad.skops"
    _tamper(good, bad, '"__module__": "crackbench.features.estimators"', '"__module__": "os"')
    with pytest.raises(UntrustedModelError, match=r"not trusted: os\.LBPFeatures"):
        load_model(bad)
    junk = tmp_path / "junk.skops"
    junk.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(UntrustedModelError, match="not a readable skops model"):
        load_model(junk)


def test_predict_mixed_good_and_bad_files(trained, synth_manifest, tmp_path, capsys):
    paths, _ = _test_split(synth_manifest)
    bad = tmp_path / "broken.jpg"
    data = open(paths[2], "rb").read()
    bad.write_bytes(data[: len(data) // 2])
    rows = list(predict_files(trained["edges-svm"], [paths[0], str(bad), paths[1]], chunk_size=2))
    assert [r.error for r in rows] == ["", "truncated", ""]
    assert rows[0].label in ("Negative", "Positive") and 0 <= rows[0].probability <= 1

    model_file = save_model(trained["edges-svm"], tmp_path / "m.skops")
    assert main(["predict", "--model", str(model_file), paths[0], str(bad), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [p["error"] for p in out["predictions"]] == ["", "truncated"]
    assert main(["predict", "--model", str(model_file), str(bad)]) == 1  # nothing predictable
    assert main(["predict", "--model", str(tmp_path / "absent.skops"), paths[0]]) == 1


def test_cli_train_from_folder_writes_model_and_manifest(synth_dir, tmp_path, capsys):
    out = tmp_path / "lbp.skops"
    assert main(["train", "--model", "lbp-svm", "--data", str(synth_dir), "--out", str(out), "--jobs", "1",
                 "--cache-dir", str(tmp_path / "c")]) == 0
    assert out.is_file() and (tmp_path / "lbp.manifest.csv").is_file()
    assert "validation accuracy" in capsys.readouterr().out
    bad_out = str(tmp_path / "x.pkl")
    assert main(["train", "--model", "lbp-svm", "--data", str(synth_dir), "--out", bad_out]) == 1


def test_training_needs_two_classes(tmp_path, synth_manifest):
    frame = pd.read_csv(synth_manifest)
    one = frame[frame["label"] == "Positive"]
    path = tmp_path / "one.csv"
    one.assign(path=[str(synth_manifest.parent / p) for p in one["path"]]).to_csv(path, index=False)
    with pytest.raises(DataError, match="exactly 2 classes"):
        _train("lbp-svm", path, progress=False)


def test_model_predict_path_equals_plain_pipeline(trained, synth_manifest):
    """ClassicalModel computes a FeatureUnion's parts directly, and scores up to MAX_ROWS rows with
    the NumPy tail of pipelines._fast: the same numbers as scikit-learn's own path."""
    paths, _ = _test_split(synth_manifest)
    images = [read_image(p, mode="gray") for p in paths[:20]]
    for name in PIPELINES:
        model = trained[name]
        expected = np.concatenate([model.pipeline.predict_proba(images[i:i + 1])[:, 1] for i in range(20)])
        one_at_a_time = np.concatenate([model.predict_proba(images[i:i + 1])[:, 1] for i in range(20)])
        np.testing.assert_allclose(one_at_a_time, expected, rtol=1e-9, atol=1e-12, err_msg=name)
        np.testing.assert_array_equal(model.predict_proba(images)[:, 1],  # 20 rows: scikit-learn's path
                                      model.pipeline.predict_proba(images)[:, 1])
        assert (model._fast_tail() is not None) == PIPELINES[name].calibrated, name


def test_fast_tail_refuses_unknown_steps_and_disagreement(trained, monkeypatch):
    from sklearn.preprocessing import MinMaxScaler

    from crackbench.pipelines import _fast

    tail = trained["lbp-svm"].pipeline[1:]
    assert _fast.compile_tail(tail)[0] is not None
    X = np.random.default_rng(0).random((30, tail.steps[0][1].n_features_in_))
    other = Pipeline([("scale", MinMaxScaler().fit(X)), *tail.steps[1:]])
    assert _fast.compile_tail(other) == (None, "")  # a step type it does not cover: no warning
    right = _fast._decision

    def off_by_a_little(clf):
        decision = right(clf)
        return lambda X: decision(X) + 1e-3

    monkeypatch.setattr(_fast, "_decision", off_by_a_little)
    fn, why = _fast.compile_tail(tail)
    assert fn is None and why.startswith("disagrees with scikit-learn")


def test_renamed_private_attribute_falls_back_to_scikit_learn_with_one_warning(trained, synth_manifest,
                                                                              monkeypatch):
    """The fast tail reads SVC's private ``_gamma``; a scikit-learn that renames it must not break
    prediction: the build fails inside its guard, the model warns once and scores through
    scikit-learn's own path."""
    from crackbench.pipelines import _fast, load_model, save_model

    paths, _ = _test_split(synth_manifest)
    model = trained["lbp-svm"]
    expected = model.pipeline.predict_proba([read_image(p, mode="gray") for p in paths[:3]])[:, 1]
    fresh_file = synth_manifest.parent / "renamed.skops"
    save_model(model, fresh_file)
    fresh = load_model(fresh_file)

    def renamed(clf):  # what reading a private attribute of another scikit-learn version does
        raise AttributeError("'SVC' object has no attribute '_gamma'")

    monkeypatch.setattr(_fast, "_decision", renamed)
    with pytest.warns(RuntimeWarning, match="scikit-learn's own path.*AttributeError.*_gamma") as record:
        got = np.concatenate([fresh.predict_proba([p])[:, 1] for p in paths[:3]])
    assert len(record) == 1
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_adapting_the_standardisation_takes_the_new_images_feature_statistics(trained, synth_manifest, tmp_path):
    from crackbench.pipelines import adapt_standardization

    model = trained["edges-svm"]
    paths, _ = _test_split(synth_manifest)
    # the same surface seen darker and flatter: every feature moves, the model's view of it is reset
    site = [(read_image(p, mode="gray") * 0.5 + 40).astype(np.uint8) for p in paths[:60]]
    before = model.pipeline.named_steps["scale"].mean_.copy()
    adapted = adapt_standardization(model, site)
    X = model.features(site)
    scaler = adapted.pipeline.named_steps["scale"]
    np.testing.assert_allclose(scaler.mean_, X.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(scaler.scale_, np.where(X.std(axis=0) > 0, X.std(axis=0), 1.0), rtol=1e-5)
    np.testing.assert_array_equal(model.pipeline.named_steps["scale"].mean_, before)  # the original is untouched
    np.testing.assert_allclose(adapted.pipeline.named_steps["scale"].transform(X).mean(axis=0), 0, atol=1e-6)
    assert adapted.metadata["adapted_standardization"] == {"n_images": 60}
    assert np.abs(adapted.predict_proba(site)[:, 1] - model.predict_proba(site)[:, 1]).max() > 1e-3
    again = load_model(save_model(adapted, tmp_path / "site.skops"))  # still a safe, loadable model file
    np.testing.assert_allclose(again.predict_proba(site), adapted.predict_proba(site), atol=1e-9)
    assert np.allclose(adapt_standardization(model, paths[:60]).pipeline.named_steps["scale"].mean_,
                       model.features([read_image(p, mode="gray") for p in paths[:60]]).mean(axis=0))
    with pytest.raises(ValueError, match="only the SVM pipelines"):
        adapt_standardization(trained["edges-rf"], site)
    with pytest.raises(ValueError, match="at least two"):
        adapt_standardization(model, site[:1])
