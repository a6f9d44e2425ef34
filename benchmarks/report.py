"""Render a benchmark run's reports from its ``results.json`` alone: report.md, report.html,
results.csv and figures/. Every number and constant shown is read from that file (the harness
computes it); nothing here trains, predicts or re-derives a statistic."""

from __future__ import annotations

import base64
import html
import io
import itertools
import json
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from crackbench.dataset import DataError
from crackbench.files import atomic_path

__all__ = ["compare_runs", "load_results", "markdown_table", "write_adapt_reports", "write_matrix_reports",
           "write_reports"]


def load_results(run_dir: str | os.PathLike) -> dict:
    """The ``results.json`` of a run folder."""
    path = Path(run_dir) / "results.json"
    if not path.is_file():
        raise DataError(f"{run_dir}: no results.json (run `crackbench benchmark` into this folder first)")
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise DataError(f"{path} cannot be read ({exc}); rerun the benchmark into this folder") from None


def _flat_rows(results: dict) -> list[dict]:
    rows = []
    for m in results["models"]:
        row = {"model": m["name"], "kind": m["kind"], "description": m["description"], "device": m.get("device", "")}
        for part in ("test", "cross"):
            if part not in m:
                continue
            prefix = "" if part == "test" else "cross_"
            for k, v in m[part]["metrics"].items():
                row[f"{prefix}{k}"] = v["value"]
                row[f"{prefix}{k}_ci_low"] = v["ci_low"]
                row[f"{prefix}{k}_ci_high"] = v["ci_high"]
            (tn, fp), (fn, tp) = m[part]["confusion"]
            row.update({f"{prefix}{k}": v for k, v in {"tn": tn, "fp": fp, "fn": fn, "tp": tp,
                                                       "n": m[part]["n"]}.items()})
        ev = (m.get("scan") or {}).get("evaluation") or {}
        row.update({f"scan_{k}": ev[k] for k in _SCAN_METRICS if k in ev})
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


# A table is (header, alignments, rows, index of the best row or None): rendered to Markdown and HTML alike.
#: A set whose positive share is further than this from one half is ranked by balanced accuracy.
IMBALANCE = 0.05


def class_balance(m: dict, part: str) -> tuple[float, float]:
    """(positive share, majority-class rate) of a model's ``part`` set, from its confusion matrix."""
    (tn, fp), (fn, tp) = m[part]["confusion"]
    n = tn + fp + fn + tp
    pos = (fn + tp) / n if n else 0.5
    return pos, max(pos, 1 - pos)


def _model_table(results: dict, part: str):
    models = [m for m in results["models"] if part in m]
    imbalanced = bool(models) and abs(class_balance(models[0], part)[0] - 0.5) > IMBALANCE
    key = "balanced_accuracy" if imbalanced else "accuracy"
    models = sorted(models, key=lambda m: (-m[part]["metrics"][key]["value"], -m[part]["metrics"]["f1"]["value"]))
    header = ["", "model", "accuracy [95% CI]", "balanced accuracy [95% CI]", "F1", "MCC", "ROC-AUC",
              "latency p50 (ms)", "throughput (img/s)", "train (s)", "size (MiB)", "device"]
    align = ["l", "l", "l", "l", "l", "l", "l", "r", "r", "r", "r", "l"]
    rows = []
    for i, m in enumerate(models):
        t = m[part]["metrics"]
        majority = class_balance(m, part)[1]
        mark = " (not above the majority class)" if imbalanced and t["accuracy"]["value"] <= majority else ""
        rows.append(["best" if i == 0 else "", m["name"], _fmt_ci(t["accuracy"]) + mark,
                     _fmt_ci(t["balanced_accuracy"]), f"{t['f1']['value']:.4f}", f"{t['mcc']['value']:.4f}",
                     f"{t['roc_auc']['value']:.4f}", f"{m['latency']['p50_ms']:.2f}", f"{m['throughput_img_s']:,.0f}",
                     f"{m['timings'].get('train_s', 0):.1f}", f"{m['model_bytes'] / 2**20:.2f}", m.get("device", "")])
    return header, align, rows, 0 if rows else None


def ranking_text(results: dict, part: str) -> str:
    """How the ``part`` table is ranked, and why."""
    models = [m for m in results["models"] if part in m]
    if not models:
        return ""
    pos, majority = class_balance(models[0], part)
    if abs(pos - 0.5) > IMBALANCE:
        return (f"{pos:.0%} of these images are cracked: rows are ranked by balanced accuracy, and plain accuracy "
                f"that does not beat always answering the majority class ({majority:.4f}) is marked.")
    return f"{pos:.0%} of these images are cracked (balanced): rows are ranked by accuracy."


_SCAN_METRICS = ("roc_auc", "average_precision", "balanced_accuracy", "f1", "crack_pixel_recall")


def _scan_table(results: dict):
    models = [m for m in results["models"] if m.get("scan")]

    def key(m):
        auc = (m["scan"]["evaluation"] or {}).get("roc_auc", float("nan"))
        return (-auc if auc == auc else 1.0, m["name"])

    header = ["", "model", "tile ROC-AUC", "average precision", "balanced accuracy", "F1", "crack-pixel recall",
              "flagged / tiles", "s / MP"]
    rows = []
    for m in sorted(models, key=key):
        sc, ev = m["scan"], m["scan"]["evaluation"] or {}
        rows.append(["", m["name"], *(f"{ev[k]:.4f}" if k in ev else "" for k in _SCAN_METRICS),
                     f"{sc['flagged_tiles']} / {sc['tiles']}", f"{sc['seconds'] / max(sc['megapixels'], 1e-9):.3f}"])
    if rows and (models[0]["scan"]["evaluation"] or {}).get("roc_auc") is not None:
        rows[0][0] = "best"
        return header, ["l", "l", "r", "r", "r", "r", "r", "r", "r"], rows, 0
    return header, ["l", "l", "r", "r", "r", "r", "r", "r", "r"], rows, None


def _mcnemar_table(results: dict):
    rows = [[t["a"], t["b"], str(t["a_only_correct"]), str(t["b_only_correct"]), f"{t['p_value']:.3g}"]
            for t in sorted(results["mcnemar"], key=lambda t: t["p_value"])]
    return ["model A", "model B", "only A right", "only B right", "p-value"], ["l", "l", "r", "r", "r"], rows, None


def _phases_table(results: dict):
    rows = [[k.removesuffix("_s").replace("_", " "), f"{v:.1f}"] for k, v in results["phases"].items()]
    return ["phase", "seconds"], ["l", "r"], rows, None


def _md(table) -> str:
    header, align, rows, best = table
    if not rows:
        return ""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"]
    for i, r in enumerate(rows):
        cells = ["**best**" if i == best and c == "best" else c for c in r]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


_CSS = ("body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222}"
        "table{border-collapse:collapse;margin:1em 0;font-size:14px}td,th{border:1px solid #ccc;padding:4px 8px}"
        "th{background:#f3f3f3;text-align:left}td.num{text-align:right}td.txt{text-align:left}"
        "tr.best{background:#e8f5e9;font-weight:600}img{max-width:100%}.gallery{display:flex;flex-wrap:wrap;gap:8px}"
        "figure{margin:0;font-size:11px;text-align:center;width:110px}figure img{width:96px;height:96px}"
        "figure.wide{width:360px}figure.wide img{width:360px;height:auto}"
        ".row{display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start}")


def _page(title: str, parts: list[str]) -> str:
    """One self-contained HTML page (every report shares the style sheet)."""
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_CSS}</style></head><body>{''.join(parts)}</body></html>")


def _png_img(png: bytes, alt: str) -> str:
    return f'<img src="data:image/png;base64,{base64.b64encode(png).decode()}" alt="{html.escape(alt)}">'


def _prose(text: str) -> str:
    """A paragraph's text as HTML: escaped, with markdown's `code` spans as <code>."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))


def _html_table(table) -> str:
    header, align, rows, best = table
    if not rows:
        return ""
    out = ["<table><thead><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in header) + "</tr></thead><tbody>"]
    for i, r in enumerate(rows):
        cells = "".join(f"<td class={'num' if a == 'r' else 'txt'}>{html.escape(c)}</td>"
                        for c, a in zip(r, align, strict=True))
        out.append(f"<tr{' class=best' if i == best else ''}>{cells}</tr>")
    return "".join(out) + "</tbody></table>"


def markdown_table(results: dict, part: str = "test") -> str:
    """One row per model, best marked: ``part`` test or cross (sorted by accuracy, or by balanced
    accuracy when the set's classes are imbalanced), or scan (the whole-photo scan, sorted by tile
    ROC-AUC)."""
    return _md(_scan_table(results) if part == "scan" else _model_table(results, part))


def _leak_text(ds: dict) -> str:
    leaks = ds.get("leaks")
    if not leaks:
        return ""
    t = leaks["test"]
    near = ("near duplicates not checked (the manifest has no image hashes)" if t["near"] is None else
            f"{t['near']} have a near duplicate there (difference hash within {leaks['near_distance']} of 256 bits)")
    kept = ("near duplicates were kept in one split" if ds.get("near_distance") is not None
            else "near duplicates were not grouped (--near-distance off)")
    return (f" Of the {t['images']} test images, {t['exact']} have an exact copy in train and {near}; {kept}, "
            f"exact copies always are.")


def _texts(results: dict) -> dict[str, str]:
    """The sentences both reports print, every constant from ``results``."""
    run, proto = results["run"], results["protocol"]
    ds = run["dataset"]
    texts = {
        "dataset": (f"crackbench {run['crackbench_version']}; dataset: {ds.get('kind')} `{ds.get('path')}`, "
                    f"{ds['n_images']} images, dataset sha256 `{ds['dataset_sha256'][:16]}`, "
                    f"manifest sha256 `{ds['manifest_sha256'][:16]}`, seed {run['command']['seed']}."),
        "splits": "Splits: " + "; ".join(f"{s} " + ", ".join(f"{k} {v}" for k, v in c.items())
                                         for s, c in ds["splits"].items()) + "." + _leak_text(ds),
        "protocol": (f"Accuracy with a 95% bootstrap interval ({proto['bootstrap_resamples']:,} resamples of the "
                     f"test images); a model predicts the positive class at P >= {proto['threshold']}. Latency: "
                     f"one file -> label, decode included, median over {proto['latency_images']} images after "
                     f"{proto['latency_warmup']} warm-up calls. Throughput: batches of "
                     f"{proto['throughput_batch']} files, decode included. Train: fitting time (classical: "
                     f"without feature extraction). Device: where the model was trained and timed."),
        "mcnemar": "Exact two-sided test on the test images exactly one of the two models gets right.",
    }
    if run.get("scan_data"):
        sd = run["scan_data"]
        texts["scan"] = (f"Every model slid over {sd['n_photos']} {sd['kind']} photos of `{sd['path']}` "
                         f"(`crackbench scan`): {sd['tile']}-px tiles, stride {sd['stride']}, flagged at "
                         f"P >= {sd['threshold']}. Against the crack masks, a tile is cracked when crack pixels "
                         f"cover at least {sd['min_crack_fraction']:.1%} of it; crack-pixel recall is the share "
                         f"of mask crack pixels inside a flagged tile. s / MP: wall-clock seconds of the whole "
                         f"scan per megapixel, decoding and writing the outputs included.")
        grids = {m["name"]: (m.get("scan") or {}).get("grid") for m in results["models"]}
        own = [f"{name} {g['tile_px']:.4g}-px tiles every {g['stride_px']:.4g} px" for name, g in grids.items()
               if g and (g["tile_px"], g["stride_px"]) != (sd["tile"], sd["stride"])]
        if own:
            texts["scan"] += (" On the grid of its own input, where its convolutions run once over the photo: "
                              + "; ".join(own) + ".")
    if run.get("test_data"):
        td = run["test_data"]
        texts["cross_title"] = f"Cross-dataset: trained above, tested on all of {td['path']}"
        texts["cross"] = (f"{td['n_images']} images ({', '.join(f'{k} {v}' for k, v in td['labels'].items())}); "
                          f"nothing was tuned on it.")
    return texts


def _markdown(results: dict) -> str:
    t = _texts(results)
    out = ["# crackbench benchmark report\n", t["dataset"], t["splits"] + "\n", "## Test split (in-dataset)\n",
           t["protocol"] + " " + ranking_text(results, "test") + "\n", _md(_model_table(results, "test"))]
    if "cross" in t:
        out += [f"\n## {t['cross_title']}\n", t["cross"] + " " + ranking_text(results, "cross") + "\n",
                _md(_model_table(results, "cross"))]
    if "scan" in t:
        out += ["\n## Whole photographs\n", t["scan"] + "\n", _md(_scan_table(results))]
        first = [m for m in results["models"] if (m.get("scan") or {}).get("overlays")]
        out += ["", *(f"![{m['name']}]({m['scan']['overlays'][0]})" for m in first)]
    out += ["\n## McNemar tests on the test split\n", t["mcnemar"] + "\n", _md(_mcnemar_table(results)),
            "\n## Where the time went\n", _md(_phases_table(results))]
    return "\n".join(out) + "\n"


def _fig_to_png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()



#: where a label may go, in points from its point: right, then right-up/-down, left, above, below;
#: then the same three times as far, joined to the point by a thin line
_LABEL_SPOTS = [((6, 0), "left", "center"), ((5, 4), "left", "bottom"), ((5, -4), "left", "top"),
                ((-6, 0), "right", "center"), ((-5, 4), "right", "bottom"), ((-5, -4), "right", "top"),
                ((0, 8), "center", "bottom"), ((0, -8), "center", "top")]
_LABEL_SPOTS += [((3 * dx, 3 * dy), ha, va) for (dx, dy), ha, va in _LABEL_SPOTS]


def place_labels(ax, points, names, keep_off=(), fontsize: int = 8) -> list:
    """Label each data point at the first spot beside it (``_LABEL_SPOTS``) that overlaps no label
    placed before it, no point, no segment in ``keep_off`` (pairs of data points, e.g. error bars)
    and stays inside the axes; where every spot overlaps, the one that overlaps least. Returns the
    annotations. Deterministic: same points, same picture."""
    from matplotlib.text import Text
    from matplotlib.transforms import Bbox

    fig = ax.figure
    fig.canvas.draw()  # final limits, so data -> pixels holds
    renderer = fig.canvas.get_renderer()
    pad = 4 * fig.dpi / 72  # a marker's radius, a cap's half width
    to_px = ax.transData.transform
    taken = [Bbox.from_extents(x - pad, y - pad, x + pad, y + pad) for x, y in to_px(points)]
    for a, b in keep_off:  # a slanted segment as a chain of small boxes, not its bounding rectangle
        (x0, y0), (x1, y1) = to_px([a, b])
        n = max(1, int(np.hypot(x1 - x0, y1 - y0) / pad))
        xs, ys = np.linspace(x0, x1, n + 1), np.linspace(y0, y1, n + 1)
        taken += [Bbox.from_extents(min(xs[i], xs[i + 1]) - pad / 2, min(ys[i], ys[i + 1]) - pad / 2,
                                    max(xs[i], xs[i + 1]) + pad / 2, max(ys[i], ys[i + 1]) + pad / 2)
                  for i in range(n)]
    frame = ax.get_window_extent(renderer)

    def overlap(box) -> float:
        area = sum(max(0.0, min(box.x1, t.x1) - max(box.x0, t.x0)) * max(0.0, min(box.y1, t.y1) - max(box.y0, t.y0))
                   for t in taken)
        outside = box.width * box.height - (max(0.0, min(box.x1, frame.x1) - max(box.x0, frame.x0))
                                            * max(0.0, min(box.y1, frame.y1) - max(box.y0, frame.y0)))
        return area + 10 * outside

    placed = []
    for xy, name in zip(points, names, strict=True):
        best = None
        for k, (offset, ha, va) in enumerate(_LABEL_SPOTS):
            leader = {"arrowstyle": "-", "color": "grey", "lw": 0.5, "shrinkA": 0} if k >= 8 else None
            label = ax.annotate(name, xy, textcoords="offset points", xytext=offset, ha=ha, va=va,
                                fontsize=fontsize, arrowprops=leader)
            label.update_positions(renderer)
            box = Text.get_window_extent(label, renderer).padded(1.5)  # the text, not its leader line
            cost = overlap(box)
            if best is None or cost < best[0]:
                if best is not None:
                    best[1].remove()
                best = (cost, label, box)
            else:
                label.remove()
            if cost == 0:
                break
        taken.append(best[2])
        placed.append(best[1])
    return placed


def _figures(run_dir: Path, results: dict) -> dict[str, bytes]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = results["models"]
    figs: dict[str, bytes] = {}

    # one colour per model, the same in every figure (tab20 once there are more than ten models)
    cmap = plt.get_cmap("tab10" if len(models) <= 10 else "tab20")
    colour = {m["name"]: cmap(i % cmap.N) for i, m in enumerate(models)}
    fig, ax = plt.subplots(figsize=(7, 4.5))
    pts = sorted([(m["latency"]["p50_ms"], m["test"]["metrics"]["accuracy"], m["name"]) for m in models],
                 key=lambda t: (t[0], t[1]["value"]))
    for lat, acc, name in pts:
        ax.errorbar(lat, acc["value"], yerr=[[acc["value"] - acc["ci_low"]], [acc["ci_high"] - acc["value"]]],
                    fmt="o", capsize=3, color=colour[name])
    front, best = [], -1.0
    for lat, acc, _ in sorted(pts, key=lambda t: (t[0], -t[1]["value"])):
        if acc["value"] > best:
            front.append((lat, acc["value"]))
            best = acc["value"]
    if front:
        ax.plot(*zip(*front, strict=True), "--", color="grey", label="Pareto front")
        ax.legend(loc="lower right")
    ax.set_xscale("log")
    ax.set_xlabel("latency p50, one file -> label (ms, log scale)")
    ax.set_ylabel("test accuracy (95% CI)")
    ax.grid(alpha=0.3, which="both")
    place_labels(ax, [(lat, acc["value"]) for lat, acc, _ in pts], [name for *_, name in pts],
                 keep_off=[((lat, acc["ci_low"]), (lat, acc["ci_high"])) for lat, acc, _ in pts]
                 + list(itertools.pairwise(front)))
    figs["accuracy_vs_latency"] = _fig_to_png(fig)
    plt.close(fig)

    for part in ("test", "cross"):
        with_part = [m for m in models if part in m]
        if not with_part:
            continue
        fig, ax = plt.subplots(figsize=(5.5, 5))
        for m in with_part:
            roc = m.get("roc", {}).get(part)
            if roc:
                ax.plot(roc["fpr"], roc["tpr"], color=colour[m["name"]],
                        label=f"{m['name']} (AUC {m[part]['metrics']['roc_auc']['value']:.4f})")
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
    for m in models:
        if m.get("training_curves") and (run_dir / m["training_curves"]).is_file():
            figs[f"{m['name']}_training_curves"] = (run_dir / m["training_curves"]).read_bytes()
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



def _gallery(m: dict) -> str:
    mistakes = m.get("mistakes", {"n": 0, "most_confident": []})
    cells = []
    for r in mistakes["most_confident"]:
        b64 = _thumbnail(r["path"])
        cells.append(f'<figure><img src="data:image/jpeg;base64,{b64}" alt=""><figcaption>{html.escape(r["label"])}'
                     f' &middot; p={r["proba"]:.2f}<br>{html.escape(Path(r["path"]).name)}</figcaption></figure>')
    total = mistakes["n"]
    head = f"<h3>{html.escape(m['name'])}: {total} misclassified test image{'s' if total != 1 else ''}</h3>"
    return head + (f'<div class="gallery">{"".join(cells)}</div>' if cells else "<p>none</p>")


def _overlay_gallery(run_dir: Path, results: dict, photos: int = 2, width: int = 360) -> str:
    """Each model's overlays of the first ``photos`` photos, side by side, embedded."""
    import cv2

    cells = []
    for m in results["models"]:
        for rel in ((m.get("scan") or {}).get("overlays") or [])[:photos]:
            img = cv2.imread(str(run_dir / rel))
            if img is None:
                continue
            img = cv2.resize(img, (width, round(img.shape[0] * width / img.shape[1])), interpolation=cv2.INTER_AREA)
            ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 85])
            if ok:
                cells.append(f'<figure class=wide><img src="data:image/jpeg;base64,{base64.b64encode(buf).decode()}"'
                             f' alt="{html.escape(m["name"])} overlay"><figcaption>{html.escape(m["name"])} &middot; '
                             f'{html.escape(Path(rel).name.removesuffix(".overlay.jpg"))}</figcaption></figure>')
    return f'<div class="gallery">{"".join(cells)}</div>'


def _html(run_dir: Path, results: dict, figs: dict[str, bytes]) -> str:
    run, t = results["run"], _texts(results)

    def img(name, alt):
        return _png_img(figs[name], alt) if name in figs else ""

    env = "".join(f"<tr><th>{html.escape(k)}</th><td class=txt>{html.escape(str(v))}</td></tr>"
                  for k, v in run["environment"].items())
    ds = run["dataset"]
    data_rows = {"source": f"{ds.get('kind')}: {ds.get('path')}", "images": ds["n_images"],
                 "dataset sha256": ds["dataset_sha256"], "manifest sha256": ds["manifest_sha256"],
                 "seed": run["command"]["seed"], "crackbench": run["crackbench_version"]}
    data = "".join(f"<tr><th>{k}</th><td class=txt>{html.escape(str(v))}</td></tr>" for k, v in data_rows.items())
    parts = [
        "<h1>crackbench benchmark report</h1>",
        f"<table>{data}</table><p>{_prose(t['splits'])}</p>",
        "<h2>Test split</h2>", f"<p>{_prose(t['protocol'] + ' ' + ranking_text(results, 'test'))}</p>",
        _html_table(_model_table(results, "test")),
        "<h2>Accuracy vs latency</h2>", img("accuracy_vs_latency", "accuracy versus latency, Pareto front"),
        "<div class='row'>", img("roc_test", "ROC curves"), "</div>", img("confusion_test", "confusion matrices"),
    ]
    if "cross" in t:
        parts += [f"<h2>{html.escape(t['cross_title'])}</h2>",
                  f"<p>{_prose(t['cross'] + ' ' + ranking_text(results, 'cross'))}</p>",
                  _html_table(_model_table(results, "cross")), "<div class='row'>",
                  img("roc_cross", "cross-dataset ROC"), "</div>", img("confusion_cross", "cross-dataset confusion")]
    if "scan" in t:
        parts += ["<h2>Whole photographs</h2>", f"<p>{_prose(t['scan'])}</p>", _html_table(_scan_table(results)),
                  "<p>Overlays: the photo under each model's probability heatmap, flagged tiles outlined in red, the "
                  "masks' cracks in green.</p>",
                  _overlay_gallery(run_dir, results)]
    for name in (n for n in figs if n.endswith("_training_curves")):
        model = name.removesuffix("_training_curves")
        parts += [f"<h2>{html.escape(model)}: training curves</h2>", img(name, "loss and accuracy per epoch")]
    parts += ["<h2>McNemar tests on the test split</h2>", f"<p>{_prose(t['mcnemar'])}</p>",
              _html_table(_mcnemar_table(results)), "<h2>Where the time went</h2>",
              _html_table(_phases_table(results)),
              "<h2>Misclassified test images</h2><p>Most confident mistakes first; caption: true label, "
              "P(positive), file.</p>"]
    parts += [_gallery(m) for m in results["models"]]
    parts += [f"<h2>Environment</h2><table>{env}</table>"]
    return _page("crackbench report", parts)


def write_reports(run_dir: str | os.PathLike, results: dict | None = None) -> None:
    """(Re)write report.md, report.html, results.csv and figures/*.png from ``results`` (default:
    the run folder's ``results.json``)."""
    run_dir = Path(run_dir)
    if results is None:
        results = load_results(run_dir)
    with atomic_path(run_dir / "results.csv") as tmp:
        pd.DataFrame(_flat_rows(results)).to_csv(tmp, index=False, lineterminator="\n")
    with atomic_path(run_dir / "report.md") as tmp:
        tmp.write_text(_markdown(results))
    figs = _figures(run_dir, results)
    (run_dir / "figures").mkdir(exist_ok=True)
    for name, data in figs.items():
        (run_dir / "figures" / f"{name}.png").write_bytes(data)
    with atomic_path(run_dir / "report.html") as tmp:
        tmp.write_text(_html(run_dir, results, figs))


def _sameness(a: dict, b: dict) -> str:
    if a["dataset_sha256"] != b["dataset_sha256"]:
        return "different datasets (dataset sha256 differs)"
    if a["manifest_sha256"] != b["manifest_sha256"]:
        return "same images, different manifests (sha256 differs): the splits may differ"
    return "same images, same split"


def compare_runs(run_a: str | os.PathLike, run_b: str | os.PathLike) -> str:
    """Markdown table of the differences between two runs' results.json, model by model."""
    a, b = load_results(run_a), load_results(run_b)
    ma = {m["name"]: m for m in a["models"]}
    mb = {m["name"]: m for m in b["models"]}
    lines = [f"A = {run_a}, B = {run_b}",
             _sameness(a["run"]["dataset"], b["run"]["dataset"]), "",
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


# ---------------------------------------------------------------- matrix runs
def _matrix_tables(matrix: dict):
    cells = matrix["cells"]
    models = list(dict.fromkeys(c["model"] for c in cells))
    tests = list(matrix["datasets"])
    summary = []
    for name in models:
        mine = [c for c in cells if c["model"] == name]
        ind = [c["metrics"]["balanced_accuracy"]["value"] for c in mine if c["in_domain"]]
        ood = [c["metrics"]["balanced_accuracy"]["value"] for c in mine if not c["in_domain"]]
        auc = [c["metrics"]["roc_auc"]["value"] for c in mine if not c["in_domain"]]
        summary.append((name, np.mean(ind) if ind else np.nan, np.mean(ood) if ood else np.nan,
                        np.nanmean(auc) if auc else np.nan))
    summary.sort(key=lambda r: -r[2] if r[2] == r[2] else 1.0)
    head = ["", "model", "in domain: balanced accuracy (mean)", "out of domain: balanced accuracy (mean)",
            "drop", "out of domain: ROC-AUC (mean)"]
    rows = [["best" if i == 0 else "", n, f"{a:.4f}", f"{b:.4f}", f"{a - b:+.4f}", f"{c:.4f}"]
            for i, (n, a, b, c) in enumerate(summary)]
    tables = {"summary": (head, ["l", "l", "r", "r", "r", "r"], rows, 0 if rows else None)}
    for name in models:
        grid = []
        for t in matrix["train_sets"]:
            row = [t]
            for d in tests:
                c = next((c for c in cells if c["model"] == name and c["train"] == t and c["test"] == d), None)
                row.append("" if c is None else f"{_fmt_ci(c['metrics']['balanced_accuracy'], 3)} / "
                           f"{c['metrics']['roc_auc']['value']:.3f}" + (" (in)" if c["in_domain"] else ""))
            grid.append(row)
        tables[name] = (["trained on \\ tested on", *tests], ["l"] + ["l"] * len(tests), grid, None)
    return tables


def _matrix_figure(matrix: dict) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = matrix["cells"]
    models = list(dict.fromkeys(c["model"] for c in cells))
    tests, trains = list(matrix["datasets"]), matrix["train_sets"]
    cols = min(4, len(models))
    rows = int(np.ceil(len(models) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(1.2 + 1.1 * len(tests) * cols, 0.9 + 0.8 * len(trains) * rows),
                             squeeze=False)
    for ax, name in itertools.zip_longest(axes.ravel(), models):
        if name is None:
            ax.axis("off")
            continue
        grid = np.full((len(trains), len(tests)), np.nan)
        for c in cells:
            if c["model"] == name:
                grid[trains.index(c["train"]), tests.index(c["test"])] = c["metrics"]["balanced_accuracy"]["value"]
        ax.imshow(grid, cmap="RdYlGn", vmin=0.5, vmax=1.0)
        for (i, j), v in np.ndenumerate(grid):
            if v == v:
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=8)
        ax.set_xticks(range(len(tests)), tests, rotation=30, ha="right", fontsize=7)
        ax.set_yticks(range(len(trains)), trains, fontsize=7)
        ax.set_title(name, fontsize=9)
    fig.suptitle("Balanced accuracy: trained on (rows) x tested on (columns); 0.5 is chance")
    fig.tight_layout()
    png = _fig_to_png(fig)
    plt.close(fig)
    return png


def _matrix_text(matrix: dict) -> str:
    parts = []
    for name, d in matrix["datasets"].items():
        parts.append(f"`{name}` ({d['role']}; {d['path']}; " + ", ".join(f"{k} {v}" for k, v in d["images"].items())
                     + (f"; grouped by `{d['group_by']}`" if d.get("group_by") else "") + ")")
    return (f"crackbench {matrix['crackbench_version']}, seed {matrix['seed']}. Datasets: " + "; ".join(parts) + ". "
            "Each cell: balanced accuracy [95% CI] / ROC-AUC on the test split of the column's dataset, for the "
            "model trained on the row's training set; (in) marks in-domain cells. Balanced accuracy is the mean "
            "of the recall of each class: 0.5 is chance whatever the class balance.")


def write_matrix_reports(out: str | os.PathLike, matrix: dict | None = None) -> None:
    """matrix.md, matrix.html and figures/matrix.png of a matrix run, from ``matrix.json``."""
    out = Path(out)
    if matrix is None:
        matrix = json.loads((out / "matrix.json").read_text())
    tables = _matrix_tables(matrix)
    md = ["# crackbench cross-dataset matrix\n", _matrix_text(matrix) + "\n",
          "## In domain vs out of domain\n", _md(tables["summary"]), "\n![matrix](figures/matrix.png)\n"]
    for name, table in tables.items():
        if name != "summary":
            md += [f"\n## {name}\n", _md(table)]
    with atomic_path(out / "matrix.md") as tmp:
        tmp.write_text("\n".join(md) + "\n")
    png = _matrix_figure(matrix)
    (out / "figures").mkdir(exist_ok=True)
    (out / "figures" / "matrix.png").write_bytes(png)
    page = ["<h1>crackbench cross-dataset matrix</h1>",
            f"<p>{_prose(_matrix_text(matrix))}</p><h2>In domain vs out of domain</h2>",
            _html_table(tables["summary"]),
            _png_img(png, "balanced accuracy matrices")]
    for name, table in tables.items():
        if name != "summary":
            page += [f"<h2>{html.escape(name)}</h2>", _html_table(table)]
    with atomic_path(out / "matrix.html") as tmp:
        tmp.write_text(_page("crackbench matrix", page))


# ---------------------------------------------------------------- labels-needed curves
def _adapt_tables(adapt: dict):
    models = list(dict.fromkeys(c["model"] for c in adapt["cells"]))
    sizes = adapt["sizes"]

    def grid(part: str, metric: str, digits: int):
        rows = []
        for name in models:
            row = [name]
            for n in sizes:
                c = next((c for c in adapt["cells"] if c["model"] == name and c["n_target"] == n), None)
                row.append("" if c is None else _fmt_ci(c[part]["metrics"][metric], digits))
            rows.append(row)
        rows.sort(key=lambda r: -float(r[-1].split()[0]) if r[-1] else 1.0)
        return ["model", *(f"N = {n}" for n in sizes)], ["l"] + ["l"] * len(sizes), rows, None

    return grid("target", "balanced_accuracy", 3), grid("source", "accuracy", 4)


def _adapt_figure(adapt: dict) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name in dict.fromkeys(c["model"] for c in adapt["cells"]):
        mine = sorted((c for c in adapt["cells"] if c["model"] == name), key=lambda c: c["n_target"])
        x = [c["n_target"] for c in mine]
        ba = [c["target"]["metrics"]["balanced_accuracy"] for c in mine]
        line, = ax.plot(x, [b["value"] for b in ba], "o-", label=name)
        ax.fill_between(x, [b["ci_low"] for b in ba], [b["ci_high"] for b in ba], color=line.get_color(), alpha=0.12)
    ax.axhline(0.5, ls=":", color="grey", label="chance")
    ax.set_xlabel(f"labelled {adapt['target']['name']} images added to {adapt['source']['name']}'s training split")
    ax.set_ylabel(f"balanced accuracy, test split of {adapt['target']['name']}")
    ax.set_xticks(adapt["sizes"])
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    png = _fig_to_png(fig)
    plt.close(fig)
    return png


def _adapt_text(adapt: dict) -> str:
    s, t = adapt["source"], adapt["target"]
    return (f"crackbench {adapt['crackbench_version']}, seed {adapt['seed']}. Every model is trained on `{s['name']}` "
            f"({s['path']}) plus N labelled images drawn from the training split of `{t['name']}` ({t['path']}; "
            f"split on its own" + (f", grouped by `{t['group_by']}`" if t.get("group_by") else "") + f"; "
            f"{t['train_pool']} training images to draw from), and scored on the test split of `{t['name']}` "
            f"({t['test_images']} images, never trained on). Each size holds the smaller ones' images. Cells: "
            f"balanced accuracy [95% CI]; 0.5 is chance.")


def write_adapt_reports(out: str | os.PathLike, adapt: dict | None = None) -> None:
    """adapt.md, adapt.html and figures/adapt.png of a labels-needed run, from ``adapt.json``."""
    out = Path(out)
    if adapt is None:
        adapt = json.loads((out / "adapt.json").read_text())
    target, source = _adapt_tables(adapt)
    png = _adapt_figure(adapt)
    (out / "figures").mkdir(exist_ok=True)
    (out / "figures" / "adapt.png").write_bytes(png)
    name_t, name_s = adapt["target"]["name"], adapt["source"]["name"]
    md = ["# crackbench: how many labelled images of the target does a model need?\n", _adapt_text(adapt) + "\n",
          f"## Balanced accuracy on the test split of {name_t}\n", _md(target),
          "\n![labels-needed curve](figures/adapt.png)\n",
          f"\n## Accuracy on the test split of {name_s} (in domain)\n", _md(source)]
    with atomic_path(out / "adapt.md") as tmp:
        tmp.write_text("\n".join(md) + "\n")
    page = ["<h1>How many labelled images of the target does a model need?</h1>",
            f"<p>{_prose(_adapt_text(adapt))}</p><h2>Balanced accuracy on the test split of "
            f"{html.escape(name_t)}</h2>",
            _html_table(target), _png_img(png, "balanced accuracy against labelled target images"),
            f"<h2>Accuracy on the test split of {html.escape(name_s)} (in domain)</h2>", _html_table(source)]
    with atomic_path(out / "adapt.html") as tmp:
        tmp.write_text(_page("crackbench labels needed", page))
