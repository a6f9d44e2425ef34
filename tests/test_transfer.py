"""The transfer study script on generated data: every variant scored on the same parts, the choice
made on validation columns only, the report and figure written."""

import json

import numpy as np
import pandas as pd
import pytest

from crackbench.benchmarks import transfer
from crackbench.synthetic import make_synthetic_dataset, make_synthetic_photos

VARIANTS = ["edges / svm", "ridge / rf", "edges+ridge / svm, train + zoomed-out copies",
            "edges+ridge / rf, train + zoomed-out copies + line negatives", "edges-svm",
            "edges-svm, standardisation adapted to each target's unlabelled validation images",
            "edges-svm, scanned with tiles of 1/2 the side"]


def test_transfer_study_on_generated_data(synth_dir, tmp_path, capsys):
    target = make_synthetic_dataset(tmp_path / "target", 160, seed=7, size=128, progress=False)
    uav = make_synthetic_photos(tmp_path / "uav", n=4, seed=2, width=640, height=512)
    pd.DataFrame({"stem": [f"photo-{i:03d}" for i in range(4)], "split": ["val", "val", "test", "test"]}).to_csv(
        uav / "splits.csv", index=False)
    out = tmp_path / "study"
    args = ["--source", str(synth_dir), "--target", f"other={target}", "--uav", str(uav), "--out", str(out),
            "--group-by", r"^(\d{4})", *(a for v in VARIANTS for a in ("--variant", v))]
    assert transfer.main(args) == 0
    result = json.loads((out / "transfer.json").read_text())
    assert [r["variant"] for r in result["variants"]] == VARIANTS
    for r in result["variants"]:
        for key in ("source_val_accuracy", "source_test_accuracy", "other_val_ba", "other_test_ba", "other_test_auc",
                    "other_test_ba_own_threshold", "other_val_tpr", "other_val_tnr", "uav75_val_auc", "uav75_test_auc",
                    "feature_ms"):
            assert 0 <= r[key] <= (1 if key != "feature_ms" else 1000), (r["variant"], key, r[key])
        low, high = r["other_test_ba_ci"]
        assert low <= r["other_test_ba"] <= high
    scanned = result["variants"][-1]
    assert scanned["factor"] == "matched scale (test time)" and scanned["scan_s"] > 0
    assert scanned["feature_ms"] > result["variants"][-2]["feature_ms"]  # nine tiles per image, not one
    adapted = result["variants"][-2]
    assert adapted["factor"].startswith("unsupervised adaptation") and result["chosen"] != adapted["variant"]
    assert adapted["source_test_accuracy"] == result["variants"][-3]["source_test_accuracy"]  # not adapted there
    # the choice uses validation columns only: changing every test column leaves it where it was
    flipped = [{**r, **{k: 1 - v for k, v in r.items() if "_test_" in k and isinstance(v, float)}}
               for r in result["variants"]]
    tampered = {**result, "variants": flipped}
    assert transfer.choose(tampered) == result["chosen"]
    assert (out / "figures" / "transfer.png").stat().st_size > 10_000
    text = (out / "transfer.md").read_text()
    assert all(v in text for v in VARIANTS) and "other test BA" in text
    # a rerun reuses every finished row
    assert transfer.main(args) == 0
    assert json.loads((out / "transfer.json").read_text())["variants"] == result["variants"]
    assert "chosen on validation data" in capsys.readouterr().out


def test_unknown_variant_and_missing_folder_are_one_line_errors(tmp_path, capsys):
    assert transfer.main(["--source", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 1
    assert "no such folder" in capsys.readouterr().err
    assert transfer.main(["--source", str(tmp_path), "--out", str(tmp_path / "o"), "--variant", "magic"]) == 1
    assert "unknown variants" in capsys.readouterr().err


def test_line_negatives_and_scanned_tiles():
    rng = np.random.default_rng(0)
    gray = np.full((227, 227), 150, np.uint8)
    lined = transfer._with_lines(gray, rng)
    assert lined.shape == gray.shape and lined.dtype == np.uint8
    assert (lined <= gray).all() and (lined <= 130).mean() > 0.005  # a dark line, nothing brightened
    tiles = transfer._tiles(np.zeros((256, 256), np.uint8), 2.0)
    assert len(tiles) == 9 and all(t.shape == (128, 128) for t in tiles)
    assert len(transfer._tiles(np.zeros((227, 227), np.uint8), 1.5)) == 9


def test_a_scanned_row_needs_its_model_file(synth_dir, tmp_path, capsys):
    with pytest.raises(FileNotFoundError, match="run that row first"):
        transfer.run(synth_dir, {}, None, tmp_path / "o", variants=["robust-rf, scanned with tiles of 2/3 the side"],
                     progress=False)
