"""The reference CNN on a tiny synthetic set: architecture, learning, round trip, safe loading."""

import json
import zipfile

import cv2
import numpy as np
import pytest

keras = pytest.importorskip("keras", reason="the cnn extra (TensorFlow) is part of the README's test setup")

from crackbench.cli import main  # noqa: E402
from crackbench.cnn import build_reference_cnn, load_model, save_model, train_cnn  # noqa: E402
from crackbench.dataset import scan_dataset  # noqa: E402
from crackbench.imageio import read_image  # noqa: E402
from crackbench.manifest import read_manifest, split_dataset, write_manifest  # noqa: E402

pytestmark = pytest.mark.slow


def test_architecture_is_the_original_notebook():
    model = build_reference_cnn((128, 128, 3))
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == ["Rescaling", "Conv2D", "MaxPooling2D", "Conv2D", "MaxPooling2D", "Conv2D", "MaxPooling2D",
                     "Flatten", "Dense", "Dense"]
    convs = [layer for layer in model.layers if type(layer).__name__ == "Conv2D"]
    assert [c.filters for c in convs] == [16, 32, 32] and all(c.kernel_size == (3, 3) for c in convs)
    dense = [layer for layer in model.layers if type(layer).__name__ == "Dense"]
    assert [d.units for d in dense] == [256, 1] and dense[-1].activation.__name__ == "sigmoid"
    assert type(model.optimizer).__name__ == "Adam" and model.loss == "binary_crossentropy"
    assert model.layers[0].scale == pytest.approx(1 / 255)  # raw uint8 in


def test_batch_normalised_variant_keeps_the_notebook_layers_and_normalises_each():
    model = build_reference_cnn((128, 128, 3), batch_norm=True)
    kinds = [type(layer).__name__ for layer in model.layers]
    block = ["BatchNormalization", "ReLU"]
    assert kinds == ["Rescaling", "Conv2D", *block, "MaxPooling2D", "Conv2D", *block, "MaxPooling2D", "Conv2D",
                     *block, "MaxPooling2D", "Flatten", "Dense", *block, "Dense"]
    hidden = [layer for layer in model.layers if type(layer).__name__ in ("Conv2D", "Dense")][:-1]
    assert [getattr(h, "filters", None) or h.units for h in hidden] == [16, 32, 32, 256]
    assert not any(h.use_bias for h in hidden)  # the normalisation's offset replaces the bias


@pytest.fixture(scope="module")
def easy_manifest(tmp_path_factory):
    """240 deliberately easy 48x48 images (a thick dark stroke or none on a noisy grey), so a few
    quick epochs show whether the training loop learns at all."""
    root = tmp_path_factory.mktemp("cnn-data")
    rng = np.random.default_rng(3)
    for label in ("Positive", "Negative"):
        (root / label).mkdir()
        for i in range(120):
            img = np.clip(rng.normal(rng.uniform(120, 170), 8, (48, 48)), 0, 255).astype(np.uint8)
            if label == "Positive":
                p, q = rng.integers(0, 48, 2), rng.integers(0, 48, 2)
                cv2.line(img, (int(p[0]), 0), (int(q[0]), 47), int(rng.uniform(20, 60)), 3)
            cv2.imwrite(str(root / label / f"{i:03d}.png"), img)
    return write_manifest(split_dataset(scan_dataset(root, progress=False), val=0.2, test=0.2),
                          root.parent / "manifest.csv")


@pytest.fixture(scope="module")
def trained(easy_manifest, tmp_path_factory):
    out = tmp_path_factory.mktemp("cnn-run")
    return train_cnn(easy_manifest, out, image_size=48, epochs=6, batch_size=16, progress=False), out


def test_learns_above_chance_and_logs(trained, easy_manifest):
    model, out = trained
    frame = read_manifest(easy_manifest)
    test = frame[frame["split"] == "test"]
    proba = model.predict_proba(list(test["path"]))[:, 1]
    y = (test["label"] == "Positive").to_numpy()
    assert ((proba >= 0.5) == y).mean() > 0.8  # chance is 0.5
    assert model.metadata["val_metrics"]["roc_auc"] > 0.8
    for name in ("history.csv", "training_curves.png", "checkpoint.keras"):
        assert (out / name).is_file(), name
    assert any((out / "tensorboard").rglob("*tfevents*"))
    assert model.metadata["input"]["size"] == 48 and model.metadata["classes"] == ["Negative", "Positive"]


def test_best_epoch_is_the_epoch_whose_weights_the_model_holds(trained):
    """Early stopping watches only the schedule's second half and restores that half's best, so the
    recorded best epoch is the argmin over those epochs, not over the whole run."""
    model, _ = trained
    meta = model.metadata
    watched_from = meta["params"]["early_stopping_from_epoch"]  # counting from 1
    val_loss = np.asarray(meta["history"]["val_loss"])
    assert meta["best_epoch"] == watched_from + int(np.argmin(val_loss[watched_from - 1:]))
    assert meta["device"] == "CPU" or meta["device"].startswith("GPU: ")


def test_save_load_identical_predictions_arrays_and_paths(trained, easy_manifest, tmp_path):
    model, _ = trained
    paths = list(read_manifest(easy_manifest)["path"][:12])
    loaded = load_model(save_model(model, tmp_path / "m.keras"))
    assert loaded.metadata == json.loads(json.dumps(model.metadata))
    np.testing.assert_array_equal(loaded.predict_proba(paths), model.predict_proba(paths))
    arrays = [read_image(p) for p in paths]  # raw uint8 RGB, any size: resized inside predict
    np.testing.assert_array_equal(loaded.predict_proba(arrays), loaded.predict_proba(paths))


def test_same_seed_same_weights(easy_manifest, tmp_path):
    a = train_cnn(easy_manifest, tmp_path / "a", image_size=32, epochs=1, batch_size=16, progress=False)
    b = train_cnn(easy_manifest, tmp_path / "b", image_size=32, epochs=1, batch_size=16, progress=False)
    for wa, wb in zip(a.keras_model.get_weights(), b.keras_model.get_weights(), strict=True):
        np.testing.assert_array_equal(wa, wb)


def test_unsafe_lambda_model_is_refused(trained, tmp_path):
    model, _ = trained
    good = save_model(model, tmp_path / "good.keras")
    evil = keras.Sequential([keras.Input((48, 48, 3)), keras.layers.Lambda(lambda x: x * 2)])
    bad = tmp_path / "bad.keras"
    evil.save(bad)
    with zipfile.ZipFile(good) as z, zipfile.ZipFile(bad, "a") as zb:
        zb.writestr("crackbench.json", z.read("crackbench.json"))
    with pytest.raises(ValueError, match="safe mode"):
        load_model(bad)
    assert main(["predict", "--model", str(bad), str(tmp_path)]) == 1


def test_cli_train_and_predict_cnn(easy_manifest, tmp_path, capsys):
    out = tmp_path / "cnn.keras"
    assert main(["train", "--model", "cnn", "--manifest", str(easy_manifest), "--out", str(out), "--epochs", "1",
                 "--image-size", "32"]) == 0
    assert out.is_file() and (tmp_path / "cnn" / "history.csv").is_file()
    assert "validation accuracy" in capsys.readouterr().out
    paths = list(read_manifest(easy_manifest)["path"][:3])
    assert main(["predict", "--model", str(out), *paths, "--json"]) == 0
    preds = json.loads(capsys.readouterr().out)["predictions"]
    assert len(preds) == 3 and all(p["label"] in ("Negative", "Positive") for p in preds)


def test_cnn_study_script_prints_one_row_per_seed(easy_manifest, capsys):
    from crackbench.benchmarks import cnn_study

    assert cnn_study.main(["--manifest", str(easy_manifest), "--seeds", "0", "1", "--epochs", "1",
                           "--image-size", "32"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| 0 |") or line.startswith("| 1 |")]
    assert len(rows) == 2 and all("| 32 | 1 (1) |" in r for r in rows), out
    assert "Test images wrong in every run" in out
    assert cnn_study.main(["--manifest", str(easy_manifest.parent / "missing.csv")]) == 1


def test_field_augmentation_changes_images_reproducibly_and_trains(easy_manifest, tmp_path):
    from crackbench.cnn.training import make_dataset
    from crackbench.manifest import read_manifest

    frame = read_manifest(easy_manifest).head(16)
    y = np.zeros(len(frame), np.float32)
    plain = next(iter(make_dataset(frame["path"], y, 48, batch_size=16)))[0].numpy()
    first = next(iter(make_dataset(frame["path"], y, 48, batch_size=16, augment="field", seed=5)))[0].numpy()
    again = next(iter(make_dataset(frame["path"], y, 48, batch_size=16, augment="field", seed=5)))[0].numpy()
    assert first.shape == plain.shape and first.dtype == np.uint8
    np.testing.assert_array_equal(first, again)  # seeded: the same epoch twice
    # each image is changed, beyond what flips and quarter turns can do (those keep the mean)
    assert (np.abs(first.reshape(16, -1).mean(1) - plain.reshape(16, -1).mean(1)) > 0.5).mean() > 0.5
    model = train_cnn(easy_manifest, tmp_path / "aug", image_size=32, epochs=1, augment="field", name="cnn-aug",
                      progress=False)
    assert model.name == "cnn-aug" and model.metadata["params"]["augment"] == "field"
    assert "augmentation" in model.metadata["description"]


def _scan_photo(h=330, w=437):
    rng = np.random.default_rng(8)
    img = np.clip(rng.normal(150, 12, (h, w)), 0, 255).astype(np.uint8)
    cv2.line(img, (40, 30), (200, 150), 20, 4)
    return np.repeat(img[..., None], 3, axis=-1)


@pytest.mark.parametrize("band_pixels", [None, 1])
def test_fully_convolutional_scan_gives_each_tile_what_the_network_gives_it_alone(trained, band_pixels, monkeypatch):
    """The trunk runs once over the photo (in one band, or one band per tile row); every tile's
    probability is the network's on that tile cropped from the resampled photo, aligned tiles and
    the last row and column (shifted inward, off the pooling step) alike; coordinates still cover
    every pixel of the original photo."""
    from crackbench.cnn import model as cnn_model
    from crackbench.scan import resample, scan_image

    if band_pixels:
        monkeypatch.setattr(cnn_model, "_BAND_PIXELS", band_pixels)
    model, _ = trained
    assert model.grid_geometry() == (48, 8)  # 48-px input, three 2x2 poolings
    photo = _scan_photo()
    result = scan_image(model, photo, tile=100)
    assert result.tile == 48 and result.stride == 24 and result.scale == pytest.approx(100 / 48)
    assert (result.ys % 8 != 0).any() and (result.xs % 8 != 0).any()  # both paths are exercised
    resampled = resample(photo, result.scale)
    assert resampled.shape[:2] == result.scanned_shape
    alone = model.predict_proba([resampled[y:y + 48, x:x + 48] for y in result.ys for x in result.xs])[:, 1]
    np.testing.assert_allclose(result.probabilities.ravel(), alone, rtol=0, atol=1e-5)
    covered = np.zeros(photo.shape[:2], bool)
    for t in result.tiles.itertuples():
        covered[t.y:t.y + t.height, t.x:t.x + t.width] = True
        assert 98 <= t.width <= 102 and 98 <= t.height <= 102  # 100 photo pixels, up to rounding
    assert covered.all()


@pytest.fixture(scope="module")
def trained_bn(easy_manifest, tmp_path_factory):
    return train_cnn(easy_manifest, tmp_path_factory.mktemp("bn"), image_size=48, epochs=4, batch_size=16,
                     batch_norm=True, progress=False)


def test_batch_normalised_variant_learns_saves_and_scans_fully_convolutionally(trained_bn, tmp_path):
    from crackbench.scan import resample, scan_image

    model = trained_bn
    assert model.metadata["params"]["batch_norm"] and "batch-normalised" in model.metadata["description"]
    assert model.metadata["val_metrics"]["roc_auc"] > 0.8
    again = load_model(save_model(model, tmp_path / "bn.keras"))
    assert again.grid_geometry() == (48, 8)  # normalisation is per pixel: the scan still shares its work
    result = scan_image(again, _scan_photo(), tile=100)
    resampled = resample(_scan_photo(), result.scale)
    alone = model.predict_proba([resampled[y:y + 48, x:x + 48] for y in result.ys for x in result.xs])[:, 1]
    np.testing.assert_allclose(result.probabilities.ravel(), alone, rtol=0, atol=1e-5)


def test_adapting_batch_norm_takes_each_layers_statistics_from_the_new_images(trained_bn, trained, tmp_path):
    from crackbench.cnn import adapt_batch_norm
    from crackbench.cnn.model import resize_batch

    rng = np.random.default_rng(5)
    site = [np.clip(rng.normal(rng.uniform(60, 90), 20, (64, 64, 3)), 0, 255).astype(np.uint8) for _ in range(70)]
    before = [layer.get_weights() for layer in trained_bn.keras_model.layers]
    adapted = adapt_batch_norm(trained_bn, site, batch_size=32)  # three batches, the last one short
    layers = adapted.keras_model.layers
    first = next(i for i, layer in enumerate(layers) if isinstance(layer, keras.layers.BatchNormalization))
    x = resize_batch(site, 48).astype(np.float32)
    for layer in layers[:first]:
        x = np.asarray(layer(x, training=False))
    _, _, mean, var = layers[first].get_weights()
    np.testing.assert_allclose(mean, x.mean(axis=(0, 1, 2)), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(var, x.var(axis=(0, 1, 2)), rtol=1e-3, atol=1e-5)
    # the original is untouched; the copy scores differently, keeps its other weights and saves
    for layer, weights in zip(trained_bn.keras_model.layers, before, strict=True):
        for now, then in zip(layer.get_weights(), weights, strict=True):
            np.testing.assert_array_equal(now, then)
    kernel = next(i for i, layer in enumerate(layers) if isinstance(layer, keras.layers.Conv2D))
    np.testing.assert_array_equal(layers[kernel].get_weights()[0],
                                  trained_bn.keras_model.layers[kernel].get_weights()[0])
    assert np.abs(adapted.predict_proba(site)[:, 1] - trained_bn.predict_proba(site)[:, 1]).max() > 1e-3
    again = load_model(save_model(adapted, tmp_path / "site.keras"))
    assert again.metadata["adapted_batch_norm"] == {"n_images": 70}
    np.testing.assert_allclose(again.predict_proba(site), adapted.predict_proba(site), atol=1e-6)
    with pytest.raises(ValueError, match="batch_norm=True"):
        adapt_batch_norm(trained[0], site)  # the reference CNN has nothing to adapt
    with pytest.raises(ValueError, match="at least two"):
        adapt_batch_norm(trained_bn, site[:1])


def test_a_network_that_cannot_run_fully_convolutionally_is_scanned_tile_by_tile(trained):
    from crackbench.cnn import CNNModel
    from crackbench.cnn.model import fully_convolutional
    from crackbench.scan import scan_image

    model, _ = trained
    padded = keras.Sequential([keras.Input((48, 48, 3)), keras.layers.Rescaling(1 / 255),
                               keras.layers.Conv2D(4, 3, padding="same", activation="relu"),
                               keras.layers.MaxPooling2D(),
                               keras.layers.Flatten(), keras.layers.Dense(1, activation="sigmoid")])
    assert fully_convolutional(padded, 48) is None  # zero padding: a tile's border differs from the photo's
    other = CNNModel(padded, model.metadata)
    assert other.grid_geometry() is None
    result = scan_image(other, _scan_photo(), tile=100)
    assert result.tile == 100 and result.stride == 50 and result.scale == 1.0
    shared_off = scan_image(model, _scan_photo(), tile=100, shared=False)
    assert shared_off.tile == 100 and shared_off.probabilities.shape == result.probabilities.shape


def test_scan_speed_script_times_the_shared_grid_against_tile_by_tile(trained, tmp_path, capsys):
    from crackbench.benchmarks import scan as scan_bench

    model, _ = trained
    path = save_model(model, tmp_path / "cnn.keras")
    photo = tmp_path / "p.png"
    cv2.imwrite(str(photo), _scan_photo(400, 500))
    assert scan_bench.main([str(path), "--photo", str(photo), "--repeat", "1"]) == 0
    row, other = [line.split("|") for line in capsys.readouterr().out.splitlines() if line.startswith("| cnn |")]
    assert float(row[-2]) < 1e-5  # the grid's tiles, scored one at a time, give the same probabilities
    # 227-px tiles at a 48-px input: the stride rounds to a multiple of the pooling step (8)
    assert other[2].strip() == f"227 / {24 * 227 / 48:.4g}" and other[3].strip() == "-" and float(other[5]) > 0


def test_transfer_study_scores_the_adapted_cnn_per_target_and_leaves_it_out_of_the_choice(trained_bn, easy_manifest,
                                                                                          tmp_path):
    from crackbench.benchmarks import transfer

    save_model(trained_bn, tmp_path / "models" / "cnn-bn.keras")
    source = read_manifest(easy_manifest)
    target = source.assign(path=source["path"].sample(frac=1, random_state=0).to_numpy())  # other images
    name = next(iter(transfer.ADAPTED))
    row = transfer._adapted_row(name, {"source": source, "other": source}, tmp_path, None)
    other = transfer._adapted_row(name, {"source": source, "other": target}, tmp_path, None)
    assert row["other_test_auc"] > 0.8  # adapted to the target's own images, it still ranks them
    assert 0 <= other["other_test_auc"] <= 1 and row["source_test_accuracy"] == other["source_test_accuracy"]
    assert row["factor"].startswith("unsupervised adaptation")
    # it saw target images, so the rule (trained on the source alone) leaves it out of the choice
    assert transfer.choose({"targets": {"other": ""}, "variants": [{**row, "source_val_accuracy": 1.0}]}) is None
