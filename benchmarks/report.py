"""Reports from a run folder's results: results.json/.csv, report.md, report.html, figures/."""

from __future__ import annotations

import base64
import html
import io
import itertools
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from .metrics import mcnemar

__all__ = ["collect_results", "compare_runs", "markdown_table", "write_reports"]

_METRIC_LABELS = {"accuracy": "accuracy", "f1": "F1", "mcc": "MCC", "roc_auc": "ROC-AUC",
                  "precision": "precision", "recall": "recall", "balanced_accuracy": "balanced acc."}


def collect_results(run_dir: str | os.PathLike) -> dict:
    """Everything a report needs, from ``run.json`` and each ``models/*/result.json``."""
    run_dir = Path(run_dir)
    if not (run_dir / "run.json").is_file():
        raise FileNotFoundError(f"{run_dir}: not a benchmark run folder (no run.json)")
    run = json.loads((run_dir / "run.json").read_text())
    order = run["command"]["models"]
    found = {p.parent.name: json.loads(p.read_text()) for p in run_dir.glob("models/*/result.json")}
    models = [found[n] for n in order if n in found] + [found[n] for n in sorted(found) if n not in order]
    predictions = {m["name"]: pd.read_csv(run_dir / "models" / m["name"] / "predictions.csv") for m in models}
    tests = {n: p[p["set"] == "test"].set_index("path") for n, p in predictions.items()}
    tests_mcnemar = []
    for a, b in itertools.combinations([m["name"] for m in models], 2):
        common = tests[a].index.intersection(tests[b].index)
        pos = {m["name"]: m["classes"][1] for m in models}
        correct = {n: ((tests[n].loc[common, "proba"] >= 0.5) == (tests[n].loc[common, "label"] == pos[n]))
                   for n in (a, b)}
        tests_mcnemar.append({"a": a, "b": b, "n": len(common), **mcnemar(correct[a], correct[b])})
    phases = {
        "decode_s": run.get("phases", {}).get("decode_s", float("nan")),
        "features_s": sum(m["timings"].get("features_s", 0.0) for m in models if m["kind"] == "classical"),
        "fit_s": sum(m["timings"].get("train_s", 0.0) for m in models if m["kind"] == "classical"),
        "cnn_epochs_s": sum(m["timings"].get("train_s", 0.0) for m in models if m["kind"] == "cnn"),
        "evaluation_s": sum(m["timings"].get("evaluate_s", 0.0) for m in models),
    }
    return {"schema": "crackbench-results/1", "run": run, "models": models, "mcnemar": tests_mcnemar,
            "phases": phases}


def _flat_rows(results: dict) -> list[dict]:
    rows = []
    for m in results["models"]:
        row = {"model": m["name"], "kind": m["kind"], "description": m["description"]}
        for part in ("test", "cross"):
            if part not in m:
                continue
            for k, v in m[part]["metrics"].items():
                prefix = "" if part == "test" else "cross_"
                row[f"{prefix}{k}"] = v["value"]
                row[f"{prefix}{k}_ci_low"] = v["ci_low"]
                row[f"{prefix}{k}_ci_high"] = v["ci_high"]
            (tn, fp), (fn, tp) = m[part]["confusion"]
            row.update({f"{'' if part == 'test' else 'cross_'}{k}": v
                        for k, v in {"tn": tn, "fp": fp, "fn": fn, "tp": tp, "n": m[part]["n"]}.items()})
        row.update({
            "latency_p50_ms": m["latency"]["p50_ms"], "latency_p95_ms": m["latency"]["p95_ms"],
            "throughput_img_s": m["throughput_img_s"], "features_s": m["timings"].get("features_s", 0.0),
            "train_s": m["timings"].get("train_s", 0.0), "model_mib": m["model_bytes"] / 2**20,
            "peak_rss_mib": m["peak_rss_mib"], "val_accuracy": m["val_metrics"]["accuracy"],
        })
        rows.append(row)
    return rows


def _fmt_ci(metric: dict, digits: int = 4) -> str:
    return f"{metric['value']:.{digits}f} [{metric['ci_low']:.{digits}f}, {metric['ci_high']:.{digits}f}]"


def markdown_table(results: dict, part: str = "test") -> str:
    """One row per model, sorted by accuracy (then F1), best marked; ``part`` is test or cross."""
    models = [m for m in results["models"] if part in m]
    if not models:
        return ""
    models = sorted(models, key=lambda m: (-m[part]["metrics"]["accuracy"]["value"],
                                           -m[part]["metrics"]["f1"]["value"]))
    lines = ["| | model | accuracy [95% CI] | F1 | MCC | ROC-AUC | latency p50 (ms) | throughput (img/s) "
             "| train (s) | size (MiB) |", "|---|---|---|---|---|---|---:|---:|---:|---:|"]
    for i, m in enumerate(models):
        t = m[part]["metrics"]
        lines.append(
            f"| {'**best**' if i == 0 else ''} | {m['name']} | {_fmt_ci(t['accuracy'])} | {t['f1']['value']:.4f} "
            f"| {t['mcc']['value']:.4f} | {t['roc_auc']['value']:.4f} | {m['latency']['p50_ms']:.2f} "
            f"| {m['throughput_img_s']:,.0f} | {m['timings'].get('train_s', 0):.1f} | {m['model_bytes'] / 2**20:.2f} |")
    return "\n".join(lines)


def _markdown(results: dict) -> str:
    run = results["run"]
    ds = run["dataset"]
    out = ["# crackbench benchmark report\n",
           f"crackbench {run['crackbench_version']}; dataset: {ds.get('kind')} `{ds.get('path')}`, "
           f"{ds['n_images']} images, dataset sha256 `{ds['dataset_sha256'][:16]}`, "
           f"manifest sha256 `{ds['manifest_sha256'][:16]}`, seed {run['command']['seed']}.",
           "Splits: " + "; ".join(f"{s} " + ", ".join(f"{k} {v}" for k, v in c.items())
                                  for s, c in ds["splits"].items()) + ".\n",
           "## Test split (in-dataset)\n",
           "Accuracy with a 95% bootstrap interval (1,000 resamples of the test images). Latency: one file -> "
           "label, decode included, median over 200 images after 20 warm-up calls. Throughput: batches of 256 "
           "files, decode included. Train: fitting time (classical: without feature extraction).\n",
           markdown_table(results, "test")]
    if run.get("test_data"):
        td = run["test_data"]
        out += [f"\n## Cross-dataset: trained above, tested on all of `{td['path']}`\n",
                f"{td['n_images']} images ({', '.join(f'{k} {v}' for k, v in td['labels'].items())}); "
                f"nothing was tuned on it.\n", markdown_table(results, "cross")]
    out += ["\n## McNemar tests on the test split\n",
            "Exact two-sided test on the images exactly one of the two models gets right.\n",
            "| model A | model B | only A right | only B right | p-value |", "|---|---|---:|---:|---:|"]
    for t in sorted(results["mcnemar"], key=lambda t: t["p_value"]):
        out.append(f"| {t['a']} | {t['b']} | {t['a_only_correct']} | {t['b_only_correct']} | {t['p_value']:.3g} |")
    ph = results["phases"]
    out += ["\n## Where the time went\n", "| phase | seconds |", "|---|---:|"]
    out += [f"| {k.removesuffix('_s').replace('_', ' ')} | {v:.1f} |" for k, v in ph.items()]
    return "\n".join(out) + "\n"


def _fig_to_png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


def _figures(run_dir: Path, results: dict) -> dict[str, bytes]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    models = results["models"]
    figs: dict[str, bytes] = {}

    fig, ax = plt.subplots(figsize=(7, 4.5))
    pts = [(m["latency"]["p50_ms"], m["test"]["metrics"]["accuracy"], m["name"]) for m in models]
    for lat, acc, name in pts:
        ax.errorbar(lat, acc["value"], yerr=[[acc["value"] - acc["ci_low"]], [acc["ci_high"] - acc["value"]]],
                    fmt="o", capsize=3)
        ax.annotate(name, (lat, acc["value"]), textcoords="offset points", xytext=(5, 4), fontsize=8)
    front, best = [], -1.0
    for lat, acc, _ in sorted(pts, key=lambda t: (t[0], -t[1]["value"])):
        if acc["value"] > best:
            front.append((lat, acc["value"]))
            best = acc["value"]
    ax.plot(*zip(*front, strict=True), "--", color="grey", label="Pareto front")
    ax.set_xscale("log")
    ax.set_xlabel("latency p50, one file -> label (ms, log scale)")
    ax.set_ylabel("test accuracy (95% CI)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="lower right")
    figs["accuracy_vs_latency"] = _fig_to_png(fig)
    plt.close(fig)

    for part in ("test", "cross"):
        with_part = [m for m in models if part in m]
        if not with_part:
            continue
        fig, ax = plt.subplots(figsize=(5.5, 5))
        for m in with_part:
            pred = pd.read_csv(run_dir / "models" / m["name"] / "predictions.csv")
            pred = pred[pred["set"] == part]
            y = (pred["label"] == m["classes"][1]).to_numpy(int)
            if 0 < y.sum() < len(y):
                fpr, tpr, _ = roc_curve(y, pred["proba"])
                ax.plot(fpr, tpr, label=f"{m['name']} (AUC {m[part]['metrics']['roc_auc']['value']:.4f})")
        ax.plot([0, 1], [0, 1], ":", color="grey")
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("true positive rate")
        ax.set_title("ROC, " + ("test split" if part == "test" else "cross-dataset"))
        ax.legend(fontsize=7, loc="lower right")
        figs[f"roc_{part}"] = _fig_to_png(fig)
        plt.close(fig)

        cols = min(5, len(with_part))
        rows = int(np.ceil(len(with_part) / cols))
        fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.5 * rows), squeeze=False)
        for ax, m in itertools.zip_longest(axes.ravel(), with_part):
            if m is None:
                ax.axis("off")
                continue
            cm = np.array(m[part]["confusion"])
            ax.imshow(cm, cmap="Blues")
            for (i, j), v in np.ndenumerate(cm):
                ax.text(j, i, str(v), ha="center", va="center", color="white" if v > cm.max() / 2 else "black")
            ax.set_xticks([0, 1], [f"pred {c[:3]}" for c in m["classes"]], fontsize=7)
            ax.set_yticks([0, 1], [f"true {c[:3]}" for c in m["classes"]], fontsize=7)
            ax.set_title(m["name"], fontsize=9)
        fig.suptitle("Confusion matrices, " + ("test split" if part == "test" else "cross-dataset"))
        fig.tight_layout()
        figs[f"confusion_{part}"] = _fig_to_png(fig)
        plt.close(fig)
    curves = run_dir / "models" / "cnn" / "training_curves.png"
    if curves.is_file():
        figs["cnn_training_curves"] = curves.read_bytes()
    return figs


def _thumbnail(path: str, size: int = 96) -> str:
    import cv2

    from crackbench.imageio import ImageError, read_image

    try:
        img = read_image(path)
    except ImageError:
        return ""
    img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])
    return base64.b64encode(buf.tobytes()).decode() if ok else ""


def _gallery(run_dir: Path, m: dict, per_model: int = 8) -> str:
    pred = pd.read_csv(run_dir / "models" / m["name"] / "predictions.csv")
    pred = pred[pred["set"] == "test"]
    wrong = pred[(pred["proba"] >= 0.5) != (pred["label"] == m["classes"][1])]
    wrong = wrong.assign(conf=(wrong["proba"] - 0.5).abs()).sort_values(["conf", "path"], ascending=[False, True])
    cells = []
    for _, r in wrong.head(per_model).iterrows():
        b64 = _thumbnail(r["path"])
        cells.append(f'<figure><img src="data:image/jpeg;base64,{b64}" alt=""><figcaption>{html.escape(r["label"])}'
                     f' &middot; p={r["proba"]:.2f}<br>{html.escape(Path(r["path"]).name)}</figcaption></figure>')
    total = len(wrong)
    head = f"<h3>{html.escape(m['name'])}: {total} misclassified test image{'s' if total != 1 else ''}</h3>"
    return head + (f'<div class="gallery">{"".join(cells)}</div>' if cells else "<p>none</p>")


def _md_table_to_html(md: str) -> str:
    lines = [ln for ln in md.splitlines() if ln.startswith("|")]
    if not lines:
        return ""
    rows = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines]
    head, body = rows[0], rows[2:]
    out = ["<table><thead><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in head) + "</tr></thead><tbody>"]
    for r in body:
        best = r[0] == "**best**"
        cells = ["best" if best and i == 0 else c for i, c in enumerate(r)]
        out.append(f"<tr{' class=best' if best else ''}>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells)
                   + "</tr>")
    return "".join(out) + "</tbody></table>"


def _html(run_dir: Path, results: dict, md: str, figs: dict[str, bytes]) -> str:
    run = results["run"]

    def img(name, alt):
        return (f'<img src="data:image/png;base64,{base64.b64encode(figs[name]).decode()}" alt="{alt}">'
                if name in figs else "")

    sections = md.split("\n## ")
    tables = {s.split("\n", 1)[0]: _md_table_to_html(s) for s in sections[1:]}
    env = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
                  for k, v in run["environment"].items())
    ds = run["dataset"]
    data_rows = {"source": f"{ds.get('kind')}: {ds.get('path')}", "images": ds["n_images"],
                 "dataset sha256": ds["dataset_sha256"], "manifest sha256": ds["manifest_sha256"],
                 "seed": run["command"]["seed"]}
    data = "".join(f"<tr><th>{k}</th><td>{html.escape(str(v))}</td></tr>" for k, v in data_rows.items())
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>crackbench report</title><style>",
        "body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222}"
        "table{border-collapse:collapse;margin:1em 0;font-size:14px}td,th{border:1px solid #ccc;padding:4px 8px;"
        "text-align:right}th{background:#f3f3f3}td:nth-child(2),th:nth-child(2){text-align:left}"
        "tr.best{background:#e8f5e9;font-weight:600}img{max-width:100%}.gallery{display:flex;flex-wrap:wrap;gap:8px}"
        "figure{margin:0;font-size:11px;text-align:center;width:110px}figure img{width:96px;height:96px}"
        ".row{display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start}",
        "</style></head><body><h1>crackbench benchmark report</h1>",
        f"<table>{data}</table>",
        "<h2>Test split</h2>", tables.get("Test split (in-dataset)", ""),
        "<h2>Accuracy vs latency</h2>", img("accuracy_vs_latency", "accuracy versus latency, Pareto front"),
        "<div class='row'>", img("roc_test", "ROC curves"), "</div>", img("confusion_test", "confusion matrices"),
    ]
    cross_title = next((t for t in tables if t.startswith("Cross-dataset")), None)
    if cross_title:
        parts += [f"<h2>{html.escape(cross_title.replace('`', ''))}</h2>", tables[cross_title],
                  "<div class='row'>", img("roc_cross", "cross-dataset ROC"), "</div>",
                  img("confusion_cross", "cross-dataset confusion matrices")]
    if "cnn_training_curves" in figs:
        parts += ["<h2>CNN training curves</h2>", img("cnn_training_curves", "CNN loss and accuracy per epoch")]
    parts += ["<h2>McNemar tests</h2>", tables.get("McNemar tests on the test split", ""),
              "<h2>Where the time went</h2>", tables.get("Where the time went", ""),
              "<h2>Misclassified test images</h2><p>Most confident mistakes first; caption: true label, "
              "P(positive), file.</p>"]
    parts += [_gallery(run_dir, m) for m in results["models"]]
    parts += [f"<h2>Environment</h2><table>{env}</table></body></html>"]
    return "".join(parts)


def write_reports(run_dir: str | os.PathLike, results: dict) -> None:
    """(Re)write results.json, results.csv, report.md, figures/*.png and report.html."""
    run_dir = Path(run_dir)
    from .harness import write_json_atomic

    write_json_atomic(run_dir / "results.json", results)
    pd.DataFrame(_flat_rows(results)).to_csv(run_dir / "results.csv", index=False, lineterminator="\n")
    md = _markdown(results)
    (run_dir / "report.md").write_text(md)
    figs = _figures(run_dir, results)
    (run_dir / "figures").mkdir(exist_ok=True)
    for name, data in figs.items():
        (run_dir / "figures" / f"{name}.png").write_bytes(data)
    (run_dir / "report.html").write_text(_html(run_dir, results, md, figs))


def compare_runs(run_a: str | os.PathLike, run_b: str | os.PathLike) -> str:
    """Markdown table of the differences between two runs, model by model."""
    a, b = collect_results(run_a), collect_results(run_b)
    ma = {m["name"]: m for m in a["models"]}
    mb = {m["name"]: m for m in b["models"]}
    lines = [f"A = {run_a}, B = {run_b}",
             "same test images" if a["run"]["dataset"]["dataset_sha256"] == b["run"]["dataset"]["dataset_sha256"]
             else "different datasets (dataset sha256 differs)", "",
             "| model | accuracy A | accuracy B | B - A | F1 A | F1 B | latency p50 A (ms) | latency p50 B (ms) "
             "| train A (s) | train B (s) |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name in [n for n in ma if n in mb] + [n for n in mb if n not in ma] + [n for n in ma if n not in mb]:
        x, y = ma.get(name), mb.get(name)

        def g(m, f):
            return f(m) if m else float("nan")

        acc = [g(m, lambda m: m["test"]["metrics"]["accuracy"]["value"]) for m in (x, y)]
        f1 = [g(m, lambda m: m["test"]["metrics"]["f1"]["value"]) for m in (x, y)]
        lat = [g(m, lambda m: m["latency"]["p50_ms"]) for m in (x, y)]
        tr = [g(m, lambda m: m["timings"].get("train_s", 0.0)) for m in (x, y)]
        lines.append(f"| {name} | {acc[0]:.4f} | {acc[1]:.4f} | {acc[1] - acc[0]:+.4f} | {f1[0]:.4f} | {f1[1]:.4f} "
                     f"| {lat[0]:.2f} | {lat[1]:.2f} | {tr[0]:.1f} | {tr[1]:.1f} |")
    return "\n".join(lines)
