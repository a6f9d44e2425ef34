"""The harness end to end on synthetic data: a few models and a one-epoch CNN."""

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from crackbench import __version__
from crackbench.benchmarks import collect_results, compare_runs, load_results, run_benchmark, write_reports
from crackbench.cli import main
from crackbench.dataset import DataError
from crackbench.synthetic import make_synthetic_dataset

MODELS = ["lbp-svm", "edges-rf", "cnn"]


@pytest.fixture(scope="module")
def cross_dir(tmp_path_factory):
    return make_synthetic_dataset(tmp_path_factory.mktemp("cross"), 40, seed=9, progress=False)


@pytest.fixture(scope="module")
def run(synth_dir, cross_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "run"
    results = run_benchmark(out, data=synth_dir, models=MODELS, test_data=cross_dir, epochs=1, cnn_size=48,
                            n_jobs=2, progress=False)
    write_reports(out)  # compute (above), then render from results.json
    return out, results


@pytest.mark.slow
def test_every_output_exists_and_parses(run):
    out, _ = run
    for name in ("run.json", "results.json", "results.csv", "report.md", "report.html", "manifest.csv",
                 "figures/accuracy_vs_latency.png", "figures/roc_test.png", "figures/roc_cross.png",
                 "figures/confusion_test.png", "figures/cnn_training_curves.png"):
        assert (out / name).is_file(), name
    saved = json.loads((out / "results.json").read_text())
    assert saved["schema"] == "crackbench-results/2" and saved["protocol"]["bootstrap_resamples"] == 1000
    table = pd.read_csv(out / "results.csv")
    assert list(table["model"]) == MODELS
    assert table["cross_n"].tolist() == [40, 40, 40] and table["n"].tolist() == [90, 90, 90]
    for name in MODELS:
        for f in ("result.json", "predictions.csv"):
            assert (out / "models" / name / f).is_file()
    assert (out / "models/cnn/model.keras").is_file() and (out / "models/lbp-svm/model.skops").is_file()
    assert any((out / "models/cnn/tensorboard").rglob("*tfevents*"))
    report = (out / "report.md").read_text()
    test_table = report.split("## Test split")[1].split("##")[0]
    assert sum(f"| {m} |" in test_table for m in MODELS) == 3 and test_table.count("**best**") == 1
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") >= 6 and "Pareto" in page and "misclassified" in page
    leaks = saved["run"]["dataset"]["leaks"]  # the default split keeps near duplicates out of train
    assert leaks["test"] == {"images": 90, "exact": 0, "near": 0} and leaks["near_distance"] == 48
    assert "Of the 90 test images, 0 have an exact copy in train and 0 have a near duplicate there" in report


@pytest.mark.slow
def test_confidence_intervals_contain_estimates_and_numbers_are_sane(run):
    _, results = run
    for m in results["models"]:
        for part in ("test", "cross"):
            for name, metric in m[part]["metrics"].items():
                assert metric["ci_low"] <= metric["value"] <= metric["ci_high"], (m["name"], part, name)
        assert m["latency"]["n"] >= 200 and 0 < m["latency"]["p50_ms"] <= m["latency"]["p95_ms"]
        assert m["throughput_img_s"] > 0 and m["model_bytes"] > 0 and m["peak_rss_mib"] > 0
    assert {(t["a"], t["b"]) for t in results["mcnemar"]} == {("lbp-svm", "edges-rf"), ("lbp-svm", "cnn"),
                                                             ("edges-rf", "cnn")}
    assert all(0 <= t["p_value"] <= 1 for t in results["mcnemar"])
    assert results["phases"]["cnn_epochs_s"] > 0 and results["phases"]["decode_s"] > 0


@pytest.mark.slow
def test_rerun_skips_finished_models_and_report_regenerates(run, synth_dir, cross_dir, capsys):
    out, results = run
    stamps = {m: (out / "models" / m / "result.json").stat().st_mtime_ns for m in MODELS}
    again = run_benchmark(out, data=synth_dir, models=MODELS, test_data=cross_dir, epochs=1, cnn_size=48,
                          n_jobs=2, progress=False)
    assert {m: (out / "models" / m / "result.json").stat().st_mtime_ns for m in MODELS} == stamps
    assert [m["test"] for m in again["models"]] == [m["test"] for m in results["models"]]
    (out / "report.md").unlink()
    assert main(["report", str(out)]) == 0 and (out / "report.md").is_file()
    assert main(["report", "compare", str(out), str(out)]) == 0
    printed = capsys.readouterr().out
    assert "+0.0000" in printed and "same images, same split" in printed
    assert compare_runs(out, out).count("| lbp-svm |") == 1


@pytest.mark.slow
def test_result_of_another_version_is_redone(run, synth_dir, cross_dir, capsys):
    out, _ = run
    done = out / "models" / "lbp-svm" / "result.json"
    result = json.loads(done.read_text())
    result["stamp"]["crackbench_version"] = "0.0.1"
    done.write_text(json.dumps(result))
    run_benchmark(out, data=synth_dir, models=["lbp-svm"], test_data=cross_dir, epochs=1, cnn_size=48,
                  n_jobs=2, progress=False)
    assert "lbp-svm: the earlier result differs in crackbench_version: redoing it" in capsys.readouterr().err
    assert json.loads(done.read_text())["stamp"] == {**result["stamp"], "crackbench_version": __version__}
    # another library version, and a result.json cut short by a crash, are redone too
    result = json.loads(done.read_text())
    result["stamp"]["libraries"]["scikit-learn"] = "0.0"
    done.write_text(json.dumps(result))
    run_benchmark(out, data=synth_dir, models=["lbp-svm"], test_data=cross_dir, n_jobs=2, progress=False)
    assert "differs in libraries" in capsys.readouterr().err
    done.write_text(done.read_text()[:40])
    run_benchmark(out, data=synth_dir, models=["lbp-svm"], test_data=cross_dir, n_jobs=2, progress=False)
    assert f"{done} cannot be read" in capsys.readouterr().err
    assert json.loads(done.read_text())["stamp"]["seed"] == 0
    # the CNN's stamp also holds its training settings: another --epochs redoes it
    before = (out / "models" / "cnn" / "result.json").stat().st_mtime_ns
    run_benchmark(out, data=synth_dir, models=["cnn"], test_data=cross_dir, epochs=2, cnn_size=48,
                  n_jobs=2, progress=False)
    assert json.loads((out / "models" / "cnn" / "result.json").read_text())["stamp"]["epochs"] == 2
    assert (out / "models" / "cnn" / "result.json").stat().st_mtime_ns != before


@pytest.mark.slow
def test_changed_split_is_refused(run, synth_dir):
    out, _ = run
    with pytest.raises(DataError, match="differs from the split"):
        run_benchmark(out, data=synth_dir, models=["lbp-svm"], seed=1, progress=False)


@pytest.mark.slow
def test_default_run_generates_synthetic_data(tmp_path):
    results = run_benchmark(tmp_path / "r", models=["edges-svm"], n_synthetic=80, n_jobs=1, progress=False)
    assert results["run"]["dataset"]["kind"] == "synthetic" and results["run"]["dataset"]["n_images"] == 80
    assert (tmp_path / "r" / "synthetic" / "Positive").is_dir()
    scan = results["models"][0]["scan"]  # the default run also scans generated whole photos
    assert results["run"]["scan_data"]["kind"] == "synthetic" and scan["photos"] == 3 and scan["errors"] == 0
    assert 0 <= scan["evaluation"]["roc_auc"] <= 1
    assert scan["tiles"] == 3 * 10 * 14  # 1600x1200: 14 x 10 tiles of 227 px, stride 113
    write_reports(tmp_path / "r")
    md = (tmp_path / "r" / "report.md").read_text()
    assert "## Whole photographs" in md and "| edges-svm |" in md.split("## Whole photographs")[1]
    assert all((tmp_path / "r" / p).is_file() for p in scan["overlays"])
    assert md.count(".overlay.jpg)") == 1 and "Whole photographs" in (tmp_path / "r" / "report.html").read_text()
    assert scan["grid"] == {"tile_px": 227, "stride_px": 113} and "grid of its own input" not in md
    assert "(<code>crackbench scan</code>)" in (tmp_path / "r" / "report.html").read_text()  # markdown code as HTML
    from crackbench.benchmarks.report import _texts

    scan["grid"]["stride_px"] = 113.5  # what a CNN run fully convolutionally reports
    assert "edges-svm 227-px tiles every 113.5 px" in _texts(results)["scan"]


@pytest.mark.slow
def test_scan_data_is_scanned_by_every_model_and_rescanned_only_when_it_changes(run, tmp_path, capsys):
    from crackbench.synthetic import make_synthetic_photos

    out, _ = run
    photos = make_synthetic_photos(tmp_path / "photos", 2, width=500, height=400, progress=False)
    (photos / "images" / "notes.txt").write_text("not a photo")
    fresh = tmp_path / "scanned"
    results = run_benchmark(fresh, manifest=out / "manifest.csv", models=["edges-rf"], scan_data=photos,
                            n_jobs=2, progress=False)
    scan = results["models"][0]["scan"]
    assert scan["photos"] == 2 and scan["tiles"] == 2 * 3 * 4 and scan["evaluation"]["photos_evaluated"] == 2
    trained = (fresh / "models/edges-rf/model.skops").stat().st_mtime_ns
    again = run_benchmark(fresh, manifest=out / "manifest.csv", models=["edges-rf"], scan_data=photos, scan_tile=128,
                          n_jobs=2, progress=False)
    assert again["models"][0]["scan"]["tiles"] > scan["tiles"]  # rescanned with the new tile ...
    assert (fresh / "models/edges-rf/model.skops").stat().st_mtime_ns == trained  # ... without retraining
    with pytest.raises(DataError, match="images/"):
        run_benchmark(fresh, manifest=out / "manifest.csv", models=["edges-rf"], scan_data=tmp_path, progress=False)


@pytest.mark.slow
def test_killed_run_restarts_and_completes(synth_dir, tmp_path):
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "crackbench", "benchmark", "--data", str(synth_dir), "--out", str(out),
           "--models", "lbp-svm,edges-svm,combined-rf", "--jobs", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    first = out / "models" / "lbp-svm" / "result.json"
    deadline = time.monotonic() + 120
    while not first.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert first.exists(), "the first model never finished"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    stamp = first.stat().st_mtime_ns
    assert not (out / "results.json").exists()  # killed before the end
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "lbp-svm: finished in an earlier run, skipped" in done.stderr
    assert first.stat().st_mtime_ns == stamp
    assert [m["name"] for m in collect_results(out)["models"]] == ["lbp-svm", "edges-svm", "combined-rf"]
    assert [m["name"] for m in load_results(out)["models"]] == ["lbp-svm", "edges-svm", "combined-rf"]


@pytest.mark.slow
def test_latency_script_times_every_model_of_a_run(run, synth_dir, capsys):
    from crackbench.benchmarks import latency

    out, _ = run
    assert latency.main([str(out), "--data", str(synth_dir), "--n", "6", "--warmup", "2", "--rounds", "2"]) == 0
    table = capsys.readouterr().out
    for name in MODELS:
        assert f"| {name} | time_predict_file |" in table
    # classical models: ours beside the plain scikit-learn pipeline, stage by stage
    for stage in ("time_predict_file", "time_decode", "time_features", "time_classifier"):
        row = next(line for line in table.splitlines() if line.startswith(f"| lbp-svm | {stage} |"))
        assert row.count("|") == 7 and (stage == "time_decode" or row.endswith("x |")), row
    spread = table.split("2 rounds")[1]
    assert all(f"| {name} | " in spread for name in MODELS)
    assert latency.main([str(out / "missing.skops")]) == 1
    assert "no such model file" in capsys.readouterr().err


def test_feature_speed_script_runs_on_generated_images(capsys, tmp_path):
    from crackbench.benchmarks import features

    assert features.main(["--n", "12", "--repeat", "1", "--jobs", "1"]) == 0
    table = capsys.readouterr().out
    assert "12 synthetic images generated" in table
    for name in ("time_hog_skimage_defaults", "time_lbp_features_default", "time_extract_combined"):
        assert f"| {name} |" in table


def test_feature_speed_script_refuses_a_missing_folder(capsys, tmp_path):
    from crackbench.benchmarks import features

    assert features.main(["--data", str(tmp_path / "absent"), "--n", "4"]) == 1
    assert "no such image folder" in capsys.readouterr().err


@pytest.mark.slow
def test_another_seed_redoes_every_model(run, synth_dir, cross_dir, tmp_path):
    """The stamp holds the seed: a rerun with --seed 1 into a run made with seed 0 must not reuse it
    (here, on a fixed manifest, so only the training seed differs)."""
    out, _ = run
    fresh = tmp_path / "seeded"
    run_benchmark(fresh, manifest=out / "manifest.csv", models=["edges-rf"], n_jobs=2, progress=False)
    before = (fresh / "models/edges-rf/result.json").read_bytes()
    run_benchmark(fresh, manifest=out / "manifest.csv", models=["edges-rf"], seed=1, n_jobs=2, progress=False)
    after = json.loads((fresh / "models/edges-rf/result.json").read_text())
    assert after["stamp"]["seed"] == 1 and (fresh / "models/edges-rf/result.json").read_bytes() != before


@pytest.mark.slow
def test_report_renders_from_results_json_alone(run, tmp_path):
    """Compute, then render: a copy of results.json alone (no models, no predictions) renders the
    same report; a constant changed in results.json shows in both reports."""
    import shutil

    out, _ = run
    copy = tmp_path / "copy"
    copy.mkdir()
    results = json.loads((out / "results.json").read_text())
    results["protocol"]["bootstrap_resamples"] = 1234
    results["protocol"]["latency_images"] = 77
    (copy / "results.json").write_text(json.dumps(results))
    write_reports(copy)
    md, page = (copy / "report.md").read_text(), (copy / "report.html").read_text()
    for text in (md, page):
        assert "1,234 resamples" in text and "median over 77 images" in text
        assert "cnn: training curves" not in text or (out / "models/cnn/training_curves.png").is_file()
    assert md.count("| lbp-svm |") >= 2 and page.count("<td class=txt>lbp-svm</td>") >= 2
    shutil.rmtree(copy)


def test_report_modules_do_not_import_each_other():
    import ast
    import inspect

    from crackbench.benchmarks import report

    imported = {n.module for n in ast.walk(ast.parse(inspect.getsource(report)))
                if isinstance(n, ast.ImportFrom) and n.module}
    assert not {m for m in imported if "harness" in m}, imported


def test_mistakes_of_a_perfect_model_are_none_and_the_rest_rank_by_confidence():
    from crackbench.benchmarks.harness import mistakes

    test = pd.DataFrame({"path": ["a", "b", "c", "d"], "label": ["P", "N", "P", "N"], "proba": [0.9, 0.1, 0.8, 0.2],
                         "right": [True, True, True, True]})
    assert mistakes(test, 0.5, 8) == {"n": 0, "most_confident": []}
    test["right"] = [False, True, False, False]
    got = mistakes(test, 0.5, 2)
    assert got["n"] == 3 and [r["path"] for r in got["most_confident"]] == ["a", "c"]  # c and d tie: by path


def test_labels_of_crowded_points_do_not_overlap():
    import itertools

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.text import Text

    from crackbench.benchmarks.report import place_labels

    # the crowded corner of a real run: three forests within 7% latency and 0.5 points of accuracy
    points = [(14.4, 0.990), (14.7, 0.990), (14.8, 0.9905), (17.3, 0.9947), (1.9, 0.9947), (2.0, 0.9953)]
    names = ["edges-rf", "combined-rf", "hog-rf-long-name", "robust-rf", "cnn", "combined-svm"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(*zip(*points, strict=True), "o")
    ax.set_xscale("log")
    labels = place_labels(ax, points, names, keep_off=[((x, y - 0.005), (x, y + 0.005)) for x, y in points])
    renderer = fig.canvas.get_renderer()
    boxes = [Text.get_window_extent(label, renderer) for label in labels]  # the text, not a leader line
    assert [label.get_text() for label in labels] == names
    assert not any(a.overlaps(b) for a, b in itertools.combinations(boxes, 2))
    plt.close(fig)
