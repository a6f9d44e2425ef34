"""scan_image: tiles cover every pixel, map back to the original photo at any scale, light up where a
crack is drawn and nowhere far from it, and go through the model in batches."""

import cv2
import numpy as np
import pytest

from crackbench.cli import main
from crackbench.model import ImageModel
from crackbench.scan import scan_image, tile_origins
from crackbench.synthetic import synthetic_photo


class DarkLineModel(ImageModel):
    """A stand-in classifier: P(crack) = share of very dark pixels in the tile, scaled to [0, 1]."""

    input_mode = "gray"

    def __init__(self):
        self.metadata = {"name": "dark", "classes": ["Negative", "Positive"], "positive_class": "Positive"}
        self.batches = []

    def _positive_proba(self, images):
        self.batches.append(len(images))
        return np.array([min(1.0, 50 * float((np.asarray(im) < 40).mean())) for im in images])


def _photo(h=700, w=1000, line=True):
    rng = np.random.default_rng(0)
    img = np.clip(rng.normal(150, 10, (h, w)), 0, 255).astype(np.uint8)
    if line:
        cv2.line(img, (100, 80), (330, 260), 10, 3)  # a crack in the top-left area only
    return img


@pytest.mark.parametrize("length, tile, stride", [(1000, 227, 113), (227, 227, 113), (500, 100, 100),
                                                   (101, 100, 7), (50, 227, 113)])
def test_tiles_cover_every_pixel_and_end_at_the_border(length, tile, stride):
    starts = tile_origins(length, tile, stride)
    covered = np.zeros(max(length, tile), bool)
    for s in starts:
        covered[s:s + tile] = True
    assert covered[:length].all() and starts[0] == 0
    assert starts[-1] + tile == max(length, tile)  # the last tile shifted inward, never cut short
    assert (np.diff(starts) <= stride).all() and (np.diff(starts) > 0).all()


@pytest.mark.parametrize("scale", [1.0, 2.0, 0.5, 1.7, 1.9])  # 1.9: 1000 px resample to 526, 999.4 back
def test_tile_coordinates_map_back_to_the_original_photo(scale):
    photo = _photo()
    result = scan_image(DarkLineModel(), photo, tile=100, scale=scale)
    tiles = result.tiles
    assert (tiles[["x", "y"]] >= 0).all().all()
    assert ((tiles["x"] + tiles["width"]) <= 1000).all() and ((tiles["y"] + tiles["height"]) <= 700).all()
    assert (tiles["x"] + tiles["width"]).max() == 1000 and (tiles["y"] + tiles["height"]).max() == 700
    assert tiles["width"].max() == pytest.approx(100 * scale, abs=1)
    cover = np.zeros((700, 1000), bool)
    for r in tiles.itertuples():
        cover[r.y:r.y + r.height, r.x:r.x + r.width] = True
    assert cover.all()
    assert result.probability_map().shape == (700, 1000)


def test_a_drawn_crack_lights_up_the_tiles_it_crosses_and_no_others():
    model = DarkLineModel()
    result = scan_image(model, _photo(), tile=100, stride=50, batch_size=16)
    tiles = result.tiles
    hit = tiles[tiles["label"] == "Positive"]
    assert len(hit) >= 4
    crosses = (hit["x"] < 330) & (hit["x"] + hit["width"] > 100) & (hit["y"] < 260) & (hit["y"] + hit["height"] > 80)
    assert crosses.all()
    far = tiles[(tiles["x"] >= 450) | (tiles["y"] >= 400)]
    assert (far["probability"] == 0).all() and len(far) > 50
    assert max(model.batches) == 16 and len(model.batches) == -(-len(tiles) // 16)  # batches, not tile by tile
    heat = result.probability_map()
    assert heat[170, 215] > 0.5 and heat[600, 900] == 0
    overlay = result.overlay(np.dstack([_photo()] * 3), max_side=500)
    assert overlay.shape == (350, 500, 3) and overlay.dtype == np.uint8
    assert (overlay[:, :, 0] == 255).any()  # red outlines of flagged tiles
    mask = np.zeros((700, 1000), bool)
    mask[500, 100:900] = True  # a 1-px crack line survives the downsizing
    green = result.overlay(np.dstack([_photo()] * 3), mask=mask, max_side=500)
    assert (green[250] == (0, 255, 0)).all(axis=1).sum() >= 390 and not (overlay == (0, 255, 0)).all(axis=2).any()


def test_same_probabilities_as_predicting_each_tile_alone_rgb_and_gray():
    model = DarkLineModel()
    rgb = np.dstack([_photo(300, 420)] * 3)
    result = scan_image(model, rgb, tile=100)
    for r in result.tiles.itertuples():
        alone = model.predict_proba([rgb[r.y:r.y + r.height, r.x:r.x + r.width, 0].copy()])[0, 1]
        assert r.probability == alone


def test_small_photo_is_one_padded_tile_with_a_note_and_bad_input_is_refused(tmp_path):
    result = scan_image(DarkLineModel(), _photo(60, 80, line=False), tile=227)
    assert result.probabilities.shape == (1, 1) and "smaller than one tile" in result.notes[0]
    assert result.tiles.iloc[0][["x", "y", "width", "height"]].tolist() == [0, 0, 80, 60]
    assert result.probability_map().shape == (60, 80)
    with pytest.raises(ValueError, match="uint8 photo"):
        scan_image(DarkLineModel(), np.zeros((10, 10), np.float32))
    with pytest.raises(ValueError, match="scale must be positive"):
        scan_image(DarkLineModel(), _photo(), scale=0)
    path = tmp_path / "photo.png"
    cv2.imwrite(str(path), _photo(300, 400))
    assert scan_image(DarkLineModel(), path, tile=100).width == 400


@pytest.fixture(scope="module")
def edges_model(synth_dir, tmp_path_factory):
    from crackbench.registry import TrainOptions, train_model

    out = tmp_path_factory.mktemp("scanmodel")
    from crackbench.manifest import make_manifest

    make_manifest(synth_dir, out / "m.csv", n_jobs=1, progress=False)
    train_model("edges-svm", out / "m.csv", out / "edges.skops", TrainOptions(n_jobs=1, progress=False))
    return out / "edges.skops"


def test_scan_command_writes_every_output_and_scores_against_masks(edges_model, tmp_path, capsys):
    import json

    import pandas as pd

    photos, masks = tmp_path / "photos", tmp_path / "masks"
    photos.mkdir()
    masks.mkdir()
    big = np.dstack([_photo(450, 600)] * 3)
    cv2.imwrite(str(photos / "wall.jpg"), big)
    mask = np.zeros((450, 600), np.uint8)
    cv2.line(mask, (100, 80), (330, 260), 255, 3)
    cv2.imwrite(str(masks / "wall.png"), mask)  # any format, matched by stem
    cv2.imwrite(str(photos / "small.png"), _photo(100, 120))
    cv2.imwrite(str(masks / "small.png"), np.zeros((50, 50), np.uint8))  # wrong size
    encoded = cv2.imencode(".jpg", big)[1].tobytes()
    (photos / "broken.jpg").write_bytes(encoded[: len(encoded) // 2])
    cv2.imwrite(str(photos / "unmasked.png"), _photo(300, 300))
    out = tmp_path / "out"
    assert main(["scan", "--model", str(edges_model), str(photos), "--out", str(out), "--masks", str(masks)]) == 0
    summary = pd.read_csv(out / "scan.csv", keep_default_na=False)
    assert list(summary.columns) == ["photo", "width", "height", "tiles", "cracked_tiles", "max_probability",
                                     "seconds", "error"]
    assert dict(zip(summary["photo"].map(lambda p: p.split("/")[-1]), summary["error"], strict=True)) == {
        "broken.jpg": "truncated", "small.png": "", "unmasked.png": "", "wall.jpg": ""}
    for stem in ("wall", "small", "unmasked"):
        tiles = pd.read_csv(out / f"{stem}.tiles.csv")
        assert list(tiles.columns) == ["x", "y", "width", "height", "probability", "label"]
        assert cv2.imread(str(out / f"{stem}.overlay.jpg")) is not None
        heat = cv2.imread(str(out / f"{stem}.heatmap.png"), cv2.IMREAD_UNCHANGED)
        assert heat.dtype == np.uint8 and heat.ndim == 2
        gj = json.loads((out / f"{stem}.geojson").read_text())
        assert gj["type"] == "FeatureCollection"
        assert len(gj["features"]) == (tiles["probability"] >= 0.5).sum()
    assert not (out / "broken.tiles.csv").exists()
    payload = json.loads((out / "scan.json").read_text())
    assert "smaller than one tile" in next(p for p in payload["photos"] if p["photo"].endswith("small.png"))["notes"]
    evaluation = {e["photo"].split("/")[-1]: e for e in payload["evaluation"]["photos"]}
    assert evaluation["small.png"]["error"] == "mask-size-mismatch"
    assert "mask is 50x50, the photo 120x100" in evaluation["small.png"]["detail"]
    assert evaluation["unmasked.png"]["error"] == "no-mask"
    rows = {p["photo"].split("/")[-1]: p for p in payload["photos"]}
    assert (rows["wall.jpg"]["tile_px"], rows["wall.jpg"]["stride_px"]) == (227, 113)  # the grid, in photo pixels
    wall = evaluation["wall.jpg"]
    assert wall["cracked_tiles_true"] >= 2 and 0 <= wall["crack_pixel_recall"] <= 1
    assert payload["evaluation"]["overall"]["photos_evaluated"] == 1
    assert "against the masks (1 photos" in capsys.readouterr().out


def test_crack_pixel_recall_and_tile_truth_are_exact_on_a_known_mask():
    from crackbench.scan import crack_pixels_flagged, tile_crack_fraction

    model = DarkLineModel()
    photo = _photo(400, 400, line=False)
    photo[50:54, 20:180] = 0  # a dark line inside the tile at (0, 0) only: flagged
    mask = np.zeros((400, 400), bool)
    mask[50:52, 20:180] = True
    mask[300:302, 300:310] = True  # a crack the photo does not show: missed
    result = scan_image(model, photo, tile=200, stride=200)
    fraction = tile_crack_fraction(result, mask)
    np.testing.assert_allclose(fraction, [320 / 40000, 0, 0, 20 / 40000])
    assert crack_pixels_flagged(result, mask) == (320, 340)


def test_scan_speed_script_compares_with_the_naive_path(edges_model, tmp_path, capsys):
    from crackbench.benchmarks import scan as scan_bench

    photo = tmp_path / "p.jpg"
    cv2.imwrite(str(photo), cv2.cvtColor(synthetic_photo(0, 500, 400)[0], cv2.COLOR_RGB2BGR))
    assert scan_bench.main([str(edges_model), "--photo", str(photo), "--repeat", "1", "--peak-mp", "0.3"]) == 0
    out = capsys.readouterr().out
    row, other, _ = [line.split("|") for line in out.splitlines() if line.startswith("| edges-svm |")]
    assert row[2].strip() == "12"  # 4 x 3 tiles of 227 px, stride 113, on 500x400
    assert float(row[-2]) < 1e-9  # the same probabilities on both paths
    assert float(row[7]) > 0 and float(row[8].strip(" x")) > 1  # decode time, and naive / decode
    assert other[2].strip() == "227 / 113" and float(other[3]) > 0 and other[5].strip() == "-"  # scikit-learn loop
    assert "peak memory above the loaded model" in out


def test_batches_on_several_threads_give_the_same_probabilities(edges_model):
    from crackbench.registry import load_model

    model = load_model(edges_model)
    assert model.concurrent_batches and not DarkLineModel.concurrent_batches
    photo, _ = synthetic_photo(1, 900, 700)
    one = scan_image(model, photo, n_jobs=1, batch_size=5)
    two = scan_image(model, photo, n_jobs=2, batch_size=5)
    np.testing.assert_array_equal(one.probabilities, two.probabilities)
    assert one.probabilities.shape == (tile_origins(700, 227, 113).size, tile_origins(900, 227, 113).size)


def test_a_model_trained_on_patches_finds_the_cracks_of_a_synthetic_photo(edges_model):
    from crackbench.registry import load_model
    from crackbench.scan import tile_crack_fraction, tile_metrics

    photo, mask = synthetic_photo(2, 1600, 1200)
    result = scan_image(load_model(edges_model), photo)
    truth = tile_crack_fraction(result, mask) >= 0.002
    assert 0 < truth.sum() < len(truth)
    assert tile_metrics(truth, result.tiles["probability"], 0.5)["roc_auc"] > 0.85


def test_photos_scanned_side_by_side_write_the_same_files_as_one_at_a_time(edges_model, tmp_path, monkeypatch):
    import joblib

    from crackbench import scan as scan_module
    from crackbench.registry import load_model

    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(3):
        cv2.imwrite(str(photos / f"p{i}.jpg"), cv2.cvtColor(synthetic_photo(i, 500, 400)[0], cv2.COLOR_RGB2BGR))
    (photos / "bad.jpg").write_bytes(b"not a photo")
    paths = sorted(str(p) for p in photos.iterdir())
    model = load_model(edges_model)
    threads = []
    real = scan_module.scan_photo
    monkeypatch.setattr(scan_module, "scan_photo", lambda *a, **k: threads.append(
        __import__("threading").current_thread().name) or real(*a, **k))
    side = scan_module.scan_files(model, paths, tmp_path / "side", progress=False)
    assert len(set(threads)) > 1 or joblib.cpu_count() == 1  # one photo per core
    monkeypatch.setattr(joblib, "cpu_count", lambda: 1)
    one = scan_module.scan_files(model, paths, tmp_path / "one", progress=False)
    drop = ("seconds",)
    assert [{k: v for k, v in r.items() if k not in drop} for r in side["photos"]] == \
        [{k: v for k, v in r.items() if k not in drop} for r in one["photos"]]
    for f in sorted((tmp_path / "one").iterdir()):
        if f.name not in ("scan.csv", "scan.json"):  # those hold the seconds
            assert (tmp_path / "side" / f.name).read_bytes() == f.read_bytes(), f.name


def test_map_threads_yields_in_input_order_with_a_bounded_window():
    import threading
    import time

    from crackbench.model import map_threads

    running, most = set(), [0]
    lock = threading.Lock()

    def work(i):
        with lock:
            running.add(i)
            most[0] = max(most[0], len(running))
        time.sleep(0.05 if i == 0 else 0.001)  # the first is slow: later ones must wait behind it
        return i

    out = []
    for i in map_threads(work, range(12), 2):
        out.append(i)
        with lock:
            running.discard(i)
    assert out == list(range(12)) and most[0] <= 4  # two per thread, submitted and not yet yielded
    assert list(map_threads(lambda i: (i, threading.current_thread().name), range(3), 1)) == [
        (i, threading.current_thread().name) for i in range(3)]  # one worker: in this thread
