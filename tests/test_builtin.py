"""The built-in model: shipped in the package, loaded safely, described by a card that matches the
file, used by predict and scan when no --model is given, and rebuilt by a shipped command."""

import hashlib
import json

import cv2
import numpy as np
import pytest

from crackbench.cli import main
from crackbench.registry import (
    BUILTIN_DIR,
    DEFAULT_MODEL,
    builtin_models,
    load_model,
    model_card,
    render_card,
    resolve_model,
)
from crackbench.synthetic import make_synthetic_dataset, make_synthetic_photos


def test_the_shipped_model_matches_its_card_and_loads_safely():
    assert DEFAULT_MODEL in builtin_models()
    card = model_card(DEFAULT_MODEL)
    path = resolve_model(None)
    assert path == BUILTIN_DIR / card["file"] == resolve_model(DEFAULT_MODEL)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == card["file_sha256"]  # the card describes this file
    model = load_model(path)
    assert model.name == card["name"] == DEFAULT_MODEL and model.classes_ == ["Negative", "Positive"]
    assert card["evaluations"][0]["name"].endswith("(in domain)") and card["limits"]
    text = render_card(card)
    for heading in ("## Training data and split", "## Results", "## Where not to trust it"):
        assert heading in text


def test_predict_and_scan_use_the_built_in_model_without_model(tmp_path, capsys):
    make_synthetic_dataset(tmp_path / "d", 4, seed=3, progress=False)
    assert main(["predict", str(tmp_path / "d"), "--json"]) == 0
    captured = capsys.readouterr()
    assert f"using the built-in model {DEFAULT_MODEL}" in captured.err
    assert json.loads(captured.out)["model"] == DEFAULT_MODEL
    photos = make_synthetic_photos(tmp_path / "p", 1, width=480, height=360, progress=False)
    assert main(["scan", str(photos / "images"), "--out", str(tmp_path / "s")]) == 0
    assert json.loads((tmp_path / "s" / "scan.json").read_text())["model"] == DEFAULT_MODEL
    assert main(["predict", "--model", DEFAULT_MODEL, str(tmp_path / "d")]) == 0  # a built-in name works too


def test_models_lists_and_prints_the_card(capsys):
    assert main(["models", "--json"]) == 0
    rows = {r["model"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows[DEFAULT_MODEL]["built_in"] == "yes (default)" and rows["hog-rf"]["built_in"] == ""
    assert main(["models", "--card", DEFAULT_MODEL]) == 0
    assert "# Model card: edges-svm" in capsys.readouterr().out
    assert main(["models", "--card", "hog-rf"]) == 1
    assert "no built-in model named 'hog-rf'" in capsys.readouterr().err


@pytest.mark.slow
def test_build_command_trains_scores_and_writes_a_reproducible_model_and_card(synth_dir, tmp_path, capsys):
    from crackbench.benchmarks import builtin

    other = make_synthetic_dataset(tmp_path / "other", 40, seed=9, progress=False)
    photos = make_synthetic_photos(tmp_path / "photos", 1, width=700, height=500, progress=False)
    args = ["--data", str(synth_dir), "--test", f"other={other}", "--scan", f"photos={photos}"]
    assert builtin.main([*args, "--out", str(tmp_path / "a"), "--docs", str(tmp_path / "docs")]) == 0
    assert "# Model card: edges-svm" in capsys.readouterr().out
    card = json.loads((tmp_path / "a" / "edges-svm.card.json").read_text())
    assert [e["name"] for e in card["evaluations"]] == [f"{synth_dir.name} test split (in domain)", "other (all)"]
    assert card["evaluations"][1]["n"] == 40 and card["scans"][0]["photos"] == 1
    assert card["split"]["counts"]["test"] and card["training_data"]["n_images"] == 600
    assert (tmp_path / "docs" / "edges-svm.md").read_text() == render_card(card)
    assert builtin.main([*args, "--out", str(tmp_path / "b"), "--docs", str(tmp_path / "docs")]) == 0
    a, b = load_model(tmp_path / "a" / "edges-svm.skops"), load_model(tmp_path / "b" / "edges-svm.skops")
    images = [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in sorted(other.rglob("*.jpg"))]
    np.testing.assert_array_equal(a.predict_proba(images), b.predict_proba(images))  # same data + seed, same model
