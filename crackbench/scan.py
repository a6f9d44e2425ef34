"""Scan a whole photograph with a patch classifier: say where the cracks are.

Every crackbench model classifies patches. :func:`scan_image` slides one over a photograph as a grid
of square tiles (default 227 px, stride half a tile) and returns each tile's probability with its
place in the **original** photo's pixels. Work per photo happens once: one decode, one resample
(``scale``), then tiles are zero-copy views of that array
(:func:`numpy.lib.stride_tricks.sliding_window_view`) fed to the model in batches, so the model's
feature extraction is built for a whole batch at a time. A model that can share the work of
overlapping tiles (the CNN, whose convolutions run once over the photo resampled to its input
resolution, see :meth:`~crackbench.model.ImageModel.grid_geometry`) scores the whole grid itself.

Coverage: tile origins run from 0 in steps of ``stride``; the last row and column are shifted
inward to end exactly at the border, so every pixel is covered and no tile is cut short. A photo
smaller than one tile is padded (edge pixels repeated) to one tile, with a note.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field

import cv2
import numpy as np
import pandas as pd

from .imageio import DEFAULT_MAX_PIXELS, read_image, to_gray
from .model import ImageModel, map_threads, threads_for

__all__ = ["ScanResult", "resample", "resampled_size", "scan_files", "scan_image", "scan_photo", "tile_origins"]


def tile_origins(length: int, tile: int, stride: int) -> np.ndarray:
    """Start offsets of tiles along one axis: ``0, stride, 2*stride, ...``, the last one shifted
    inward to ``length - tile`` so the tiles end exactly at the border; ``[0]`` when ``length <=
    tile``."""
    if tile < 1 or stride < 1:
        raise ValueError(f"tile and stride must be positive, got tile={tile}, stride={stride}")
    if length <= tile:
        return np.zeros(1, np.int64)
    starts = np.arange(0, length - tile + 1, stride, dtype=np.int64)
    if starts[-1] != length - tile:
        starts = np.append(starts, length - tile)
    return starts


def resampled_size(width: int, height: int, scale: float) -> tuple[int, int]:
    """``(width, height)`` of a ``width`` x ``height`` photo resampled by ``1 / scale``."""
    return max(1, round(width / scale)), max(1, round(height / scale))


def resample(image: np.ndarray, scale: float) -> np.ndarray:
    """``image`` resampled by ``1 / scale`` as :func:`scan_image` does it: area averaging when
    shrinking, bilinear when enlarging; ``image`` itself at ``scale=1``."""
    if scale == 1.0:
        return image
    size = resampled_size(image.shape[1], image.shape[0], scale)
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale > 1 else cv2.INTER_LINEAR)


@dataclass
class ScanResult:
    """What :func:`scan_image` found in one photo.

    ``probabilities`` is the ``(rows, cols)`` grid of P(crack), row ``i`` / column ``j`` being the
    tile at ``ys[i], xs[j]`` of the resampled photo; ``tiles`` is the same, one row per tile, in
    the original photo's pixels (``x, y, width, height, probability, label``).
    """

    width: int  # original photo
    height: int
    tile: int  # tile side and stride in pixels of the resampled photo
    stride: int
    scale: float  # original photo pixels per resampled pixel
    threshold: float
    positive_class: str
    negative_class: str
    xs: np.ndarray  # tile origins in the resampled photo
    ys: np.ndarray
    probabilities: np.ndarray
    scanned_shape: tuple[int, int]  # (height, width) of the resampled, padded photo
    notes: list[str] = field(default_factory=list)

    @functools.cached_property
    def tiles(self) -> pd.DataFrame:
        yy, xx = np.meshgrid(self.ys, self.xs, indexing="ij")
        xx, yy = xx.ravel(), yy.ravel()
        h, w = self._resampled_shape
        x0 = np.minimum(np.round(xx * self.scale), self.width).astype(int)
        y0 = np.minimum(np.round(yy * self.scale), self.height).astype(int)
        # a tile that reaches the resampled photo's border reaches the photo's (rounding may not say so)
        x1 = np.where(xx + self.tile >= w, self.width, np.minimum(np.round((xx + self.tile) * self.scale), self.width))
        y1 = np.where(yy + self.tile >= h, self.height,
                      np.minimum(np.round((yy + self.tile) * self.scale), self.height))
        x1, y1 = x1.astype(int), y1.astype(int)
        p = self.probabilities.ravel()
        return pd.DataFrame({"x": x0, "y": y0, "width": x1 - x0, "height": y1 - y0, "probability": p,
                             "label": np.where(p >= self.threshold, self.positive_class, self.negative_class)})

    def probability_map(self) -> np.ndarray:
        """Float32 ``(height, width)`` map over the original photo: each pixel holds the mean
        probability of the tiles that cover it (computed once, then shared: do not modify it)."""
        return self._probability_map

    @property
    def _resampled_shape(self) -> tuple[int, int]:
        """(height, width) of the resampled photo before any padding."""
        width, height = resampled_size(self.width, self.height, self.scale)
        return height, width

    @functools.cached_property
    def _probability_map(self) -> np.ndarray:
        total = np.zeros(self.scanned_shape, np.float64)
        count = np.zeros(self.scanned_shape, np.float64)
        for i, y in enumerate(self.ys):
            for j, x in enumerate(self.xs):
                total[y:y + self.tile, x:x + self.tile] += self.probabilities[i, j]
                count[y:y + self.tile, x:x + self.tile] += 1
        mean = (total / np.maximum(count, 1)).astype(np.float32)
        h, w = self._resampled_shape
        mean = mean[:h, :w]  # drop padding added to a photo smaller than a tile
        return cv2.resize(mean, (self.width, self.height), interpolation=cv2.INTER_LINEAR)

    def overlay(self, image: np.ndarray, *, mask: np.ndarray | None = None, max_side: int = 1600,
                alpha: float = 0.45) -> np.ndarray:
        """The photo (RGB or grey uint8, original size), downsized so its longer side is at most
        ``max_side``, under a translucent probability heatmap; every tile at or above the threshold
        is outlined thinly and the area they cover together boldly. With ``mask`` (bool, photo
        size), the true crack pixels are drawn in green on top. Returns RGB uint8."""
        rgb = image if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
        f = min(1.0, max_side / max(self.width, self.height))
        size = (max(1, round(self.width * f)), max(1, round(self.height * f)))
        base = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        prob = cv2.resize(self.probability_map(), size, interpolation=cv2.INTER_AREA)
        heat = cv2.applyColorMap(np.clip(prob * 255, 0, 255).astype(np.uint8), cv2.COLORMAP_JET)
        heat = cv2.cvtColor(heat, cv2.COLOR_BGR2RGB)
        weight = (alpha * prob)[..., None]  # low probabilities leave the photo visible
        out = (base * (1 - weight) + heat * weight).astype(np.uint8)
        flagged = np.zeros(out.shape[:2], np.uint8)
        edges = out.copy()
        for r in self.tiles[self.tiles["probability"] >= self.threshold].itertuples():
            x0, y0, x1, y1 = (round(r.x * f), round(r.y * f), round((r.x + r.width) * f) - 1,
                              round((r.y + r.height) * f) - 1)
            flagged[y0:y1 + 1, x0:x1 + 1] = 1
            cv2.rectangle(edges, (x0, y0), (x1, y1), (255, 0, 0), 1)
        out = cv2.addWeighted(out, 0.5, edges, 0.5, 0)  # every flagged tile, thin and translucent ...
        contours, _ = cv2.findContours(flagged, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(out, contours, -1, (255, 0, 0), max(2, round(3 * max(out.shape) / 1600)))  # ... their union
        if mask is not None:
            out[cv2.resize(mask.astype(np.float32), size, interpolation=cv2.INTER_AREA) > 0] = (0, 255, 0)
        return out


def scan_image(
    model: ImageModel,
    image_or_path: np.ndarray | str | os.PathLike,
    *,
    tile: int = 227,
    stride: int | None = None,
    scale: float = 1.0,
    batch_size: int = 64,
    threshold: float = 0.5,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    n_jobs: int | None = None,
    shared: bool = True,
) -> ScanResult:
    """Slide ``model`` over a photograph; see the module docstring.

    Parameters
    ----------
    model : ImageModel
        Any trained crackbench model (classical or CNN).
    image_or_path : ndarray or path
        A uint8 photo, ``(h, w)`` grey or ``(h, w, 3)`` RGB, or an image file.
    tile, stride : int
        Tile side and step in pixels of the resampled photo (default stride: half a tile).
    scale : float
        Resample the photo by ``1 / scale`` before tiling: a photo taken from twice the distance of
        the training patches is scanned at ``scale=2``, so each tile covers ``2 * tile`` original
        pixels and sees cracks at the size the model was trained on.
    batch_size : int
        Tiles per ``predict_proba`` call.
    threshold : float
        A tile at or above it is labelled with the positive class.
    n_jobs : int, optional
        Batches scored at once on threads. Default: one per core for a model whose batches can run
        side by side (``model.concurrent_batches``: the classical pipelines), else 1 (the CNN
        parallelises each batch itself). The probabilities do not depend on it.
    shared : bool, default True
        Let a model that can share the work of overlapping tiles do so (``model.grid_geometry()``:
        the CNN, run fully convolutionally). The photo is then resampled once to the model's input
        resolution, a tile is the model's input side there, and the stride is rounded to a
        multiple of its pooling step: for the reference CNN at the defaults, 96-px tiles every
        48 px, i.e. 227 photo pixels every 113.5 instead of 113. Each tile's probability is the
        model's on that tile. ``False`` cuts every tile at ``tile`` pixels and resizes it, as for
        any model.
    """
    stride = stride or max(1, tile // 2)
    if scale <= 0:
        raise ValueError(f"scale must be positive, got {scale}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if isinstance(image_or_path, (str, os.PathLike)):
        image = read_image(image_or_path, mode=model.input_mode, max_pixels=max_pixels)
    else:
        image = np.asarray(image_or_path)
        if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
            raise ValueError(f"expected a uint8 photo of shape (h, w) or (h, w, 3), got {image.dtype} "
                             f"{image.shape}")
        if model.input_mode == "gray" and image.ndim == 3:
            image = to_gray(image)
    height, width = image.shape[:2]
    notes = []
    grid = model.grid_geometry() if shared else None
    if grid is not None:  # tiles at the model's input resolution: one resample for the whole photo
        side, step = grid
        scale, stride, tile = scale * tile / side, max(step, round(stride * side / tile / step) * step), side
    scanned = resample(image, scale)
    sh, sw = scanned.shape[:2]
    if sh < tile or sw < tile:
        pad = ((0, max(0, tile - sh)), (0, max(0, tile - sw))) + (((0, 0),) if scanned.ndim == 3 else ())
        scanned = np.pad(scanned, pad, mode="edge")
        side_px = tile * scale
        notes.append(f"smaller than one tile ({width}x{height} px, a tile covers {side_px:.4g}x{side_px:.4g}): "
                     f"scanned as one tile padded with its edge pixels")
    ys = tile_origins(scanned.shape[0], tile, stride)
    xs = tile_origins(scanned.shape[1], tile, stride)
    if grid is not None:
        proba = model.grid_proba(scanned, ys, xs)
    else:
        windows = np.lib.stride_tricks.sliding_window_view(scanned, (tile, tile), axis=(0, 1))  # views, no copies
        origins = [(y, x) for y in ys for x in xs]
        starts = range(0, len(origins), batch_size)

        def score(start: int) -> np.ndarray:
            batch = origins[start:start + batch_size]
            # one contiguous copy per grey tile, on this batch's thread: every feature set then reads it as is
            tiles = [np.ascontiguousarray(windows[y, x]) if scanned.ndim == 2 else np.moveaxis(windows[y, x], 0, -1)
                     for y, x in batch]
            return model.predict_proba(tiles)[:, 1]

        proba = np.concatenate(list(map_threads(score, starts, threads_for(model, n_jobs, len(starts)))))
    return ScanResult(width=width, height=height, tile=tile, stride=stride, scale=scale, threshold=threshold,
                      positive_class=model.classes_[1], negative_class=model.classes_[0], xs=xs, ys=ys,
                      probabilities=proba.reshape(len(ys), len(xs)), scanned_shape=scanned.shape[:2], notes=notes)


#: Default share of a tile's pixels that must be crack in the mask for the tile to count as cracked:
#: 0.2% is a 1-pixel-wide crack across 45% of a 227-px tile (or a 3-pixel one across 15%), about the
#: least crack an Özgenel "Positive" patch shows; a tile a crack only clips is counted uncracked.
MIN_CRACK_FRACTION = 0.002


def read_mask(path: str | os.PathLike, shape: tuple[int, int]) -> np.ndarray:
    """A crack mask (any image format; crack = white, pixel value > 127) as a bool array; its size
    must equal ``shape`` (height, width) of the photo."""
    from .imageio import ImageError

    mask = read_image(path, mode="gray")
    if mask.shape != tuple(shape):
        raise ImageError(path, "mask-size-mismatch", f"mask is {mask.shape[1]}x{mask.shape[0]}, the photo "
                                                     f"{shape[1]}x{shape[0]}")
    return mask > 127


def tile_crack_fraction(result: ScanResult, mask: np.ndarray) -> np.ndarray:
    """Share of each tile's pixels (``result.tiles`` order) that the mask marks as crack."""
    integral = cv2.integral(mask.astype(np.uint8))  # (h + 1, w + 1) running sums
    t = result.tiles
    x0, y0, x1, y1 = t["x"].to_numpy(), t["y"].to_numpy(), (t["x"] + t["width"]).to_numpy(), \
        (t["y"] + t["height"]).to_numpy()
    inside = integral[y1, x1] - integral[y0, x1] - integral[y1, x0] + integral[y0, x0]
    return inside / np.maximum((x1 - x0) * (y1 - y0), 1)


def crack_pixels_flagged(result: ScanResult, mask: np.ndarray) -> tuple[int, int]:
    """(crack pixels of the mask inside at least one flagged tile, all crack pixels of the mask)."""
    flagged = np.zeros(mask.shape, bool)
    for r in result.tiles.itertuples():
        if r.probability >= result.threshold:
            flagged[r.y:r.y + r.height, r.x:r.x + r.width] = True
    return int((mask & flagged).sum()), int(mask.sum())


def tile_metrics(truth: np.ndarray, proba: np.ndarray, threshold: float) -> dict:
    """Tile-level ROC-AUC, average precision, balanced accuracy and F1 (at ``threshold``) of
    predicted probabilities against 0/1 truth; nan where a metric is undefined (one class)."""
    from sklearn.metrics import average_precision_score, balanced_accuracy_score, f1_score, roc_auc_score

    truth = np.asarray(truth, int)
    pred = (np.asarray(proba) >= threshold).astype(int)
    both = 0 < truth.sum() < len(truth)
    return {"tiles": len(truth), "cracked_tiles_true": int(truth.sum()),
            "roc_auc": float(roc_auc_score(truth, proba)) if both else float("nan"),
            "average_precision": float(average_precision_score(truth, proba)) if truth.any() else float("nan"),
            "balanced_accuracy": float(balanced_accuracy_score(truth, pred)) if both else float("nan"),
            "f1": float(f1_score(truth, pred, zero_division=0))}


def geojson(result: ScanResult) -> dict:
    """The tiles at or above the threshold as a GeoJSON FeatureCollection of polygons in the photo's
    pixel coordinates (x right, y down), each with its probability."""
    features = []
    for r in result.tiles.itertuples():
        if r.probability >= result.threshold:
            ring = [[r.x, r.y], [r.x + r.width, r.y], [r.x + r.width, r.y + r.height], [r.x, r.y + r.height],
                    [r.x, r.y]]
            features.append({"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [ring]},
                             "properties": {"probability": round(float(r.probability), 6), "label": r.label}})
    return {"type": "FeatureCollection", "properties": {"coordinates": "photo pixels, x right, y down",
                                                        "width": result.width, "height": result.height},
            "features": features}


def _find_mask(masks_dir: str | os.PathLike, stem: str) -> str | None:
    from .imageio import IMAGE_EXTENSIONS

    found = sorted(p for p in os.listdir(masks_dir)
                   if os.path.splitext(p)[0] == stem and os.path.splitext(p)[1].lower() in IMAGE_EXTENSIONS)
    return os.path.join(masks_dir, found[0]) if found else None


def scan_photo(model: ImageModel, path: str, *, tile: int = 227, stride: int | None = None, scale: float = 1.0,
               threshold: float = 0.5, masks: str | os.PathLike | None = None,
               min_crack_fraction: float = MIN_CRACK_FRACTION, max_pixels: int = DEFAULT_MAX_PIXELS,
               n_jobs: int | None = None) -> dict:
    """Scan one photo file and encode its outputs, writing nothing: what :func:`scan_files` (or a
    Dask worker for it) computes per photo. Returns ``row`` (its ``scan.csv`` fields), ``files``
    (output suffix -> encoded bytes; empty when the photo could not be read; ``tile_px`` and
    ``stride_px`` are the grid the model used, in photo pixels), and with ``masks``
    ``evaluation`` (its row of ``evaluation.csv``) plus ``truth``, ``proba``, ``crack_pixels``
    (inside a flagged tile, all) for the pooled metrics."""
    import json
    import time

    from .imageio import ImageError

    row = {"photo": path, "width": "", "height": "", "tiles": "", "cracked_tiles": "", "max_probability": "",
           "seconds": "", "error": "", "detail": "", "notes": "", "tile_px": "", "stride_px": ""}
    start = time.perf_counter()
    try:
        image = read_image(path, mode="rgb", max_pixels=max_pixels)
        result = scan_image(model, image, tile=tile, stride=stride, scale=scale, threshold=threshold, n_jobs=n_jobs)
    except ImageError as exc:
        return {"row": {**row, "error": exc.reason, "detail": exc.detail}, "files": {}}
    tiles = result.tiles
    seconds = time.perf_counter() - start
    out: dict = {}
    mask = None
    if masks is not None:
        stem = os.path.splitext(os.path.basename(path))[0]
        mask_path = _find_mask(masks, stem)
        entry = {"photo": path, "mask": mask_path or "", "error": "", "detail": ""}
        if mask_path is None:
            entry.update(error="no-mask", detail=f"no mask named {stem}.* in {masks}")
        else:
            try:
                mask = read_mask(mask_path, (result.height, result.width))
            except ImageError as exc:
                entry.update(error=exc.reason, detail=exc.detail)
        if mask is not None:
            truth = (tile_crack_fraction(result, mask) >= min_crack_fraction).astype(int)
            inside, total = crack_pixels_flagged(result, mask)
            entry.update(**tile_metrics(truth, tiles["probability"], threshold),
                         crack_pixel_recall=inside / total if total else float("nan"))
            out.update(truth=truth, proba=tiles["probability"].to_numpy(), crack_pixels=(inside, total))
        out["evaluation"] = entry
    heat = np.clip(np.round(result.probability_map() * 255), 0, 255).astype(np.uint8)
    files = {
        ".tiles.csv": tiles.to_csv(index=False, float_format="%.6f", lineterminator="\n").encode(),
        ".overlay.jpg": cv2.imencode(".jpg", cv2.cvtColor(result.overlay(image, mask=mask), cv2.COLOR_RGB2BGR),
                                     [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes(),
        ".heatmap.png": cv2.imencode(".png", heat)[1].tobytes(),
        ".geojson": json.dumps(geojson(result)).encode(),
    }
    row.update(width=result.width, height=result.height, tiles=len(tiles),
               cracked_tiles=int((tiles["probability"] >= threshold).sum()),
               max_probability=round(float(tiles["probability"].max()), 6), seconds=round(seconds, 3),
               notes="; ".join(result.notes), tile_px=round(result.tile * result.scale, 3),
               stride_px=round(result.stride * result.scale, 3))
    return {**out, "row": row, "files": files}


def scan_files(model: ImageModel, paths: list[str], out_dir: str | os.PathLike, *, tile: int = 227,
               stride: int | None = None, scale: float = 1.0, threshold: float = 0.5,
               masks: str | os.PathLike | None = None, min_crack_fraction: float = MIN_CRACK_FRACTION,
               max_pixels: int = DEFAULT_MAX_PIXELS, progress: bool = True) -> dict:
    """Scan every photo and write, per photo, ``<stem>.tiles.csv``, ``<stem>.overlay.jpg``,
    ``<stem>.heatmap.png`` and ``<stem>.geojson``, and over all photos ``scan.csv`` and
    ``scan.json``. A photo that cannot be read is a row with its reason code. With ``masks`` (a
    folder of crack masks matched by file stem), each photo's tiles are scored against its mask
    and ``scan.json`` holds per-photo and pooled metrics (``evaluation.csv`` per photo). Returns
    what ``scan.json`` holds.

    Inside a :func:`crackbench.cluster.connect` block the photos are scanned by the Dask workers
    (which read the photos and masks from their paths); the files are written here either way."""
    from .cluster import active_client

    out = os.fspath(out_dir)
    os.makedirs(out, exist_ok=True)
    settings = {"tile": tile, "stride": stride, "scale": scale, "threshold": threshold, "masks": masks,
                "min_crack_fraction": min_crack_fraction, "max_pixels": max_pixels}
    client = active_client()
    if client is not None and paths:
        from .cluster import scan_on_cluster

        results = scan_on_cluster(client, model, paths, settings)
    else:
        # one photo per core (a classical model), each on one thread: decoding, scoring and encoding
        # of different photos overlap; otherwise one photo at a time, its batches on the cores
        workers = threads_for(model, None, len(paths))
        per_photo = 1 if workers > 1 else None
        results = map_threads(lambda p: scan_photo(model, p, **settings, n_jobs=per_photo), paths, workers)
    return _write_scans(model, paths, results, out, settings, progress)


def _write_scans(model: ImageModel, paths: list[str], results, out: str, settings: dict, progress: bool) -> dict:
    """Write each photo's files as its result comes, then ``scan.csv``, ``scan.json`` and, with
    masks, ``evaluation.csv``; returns what ``scan.json`` holds."""
    from tqdm.auto import tqdm

    from .files import atomic_path, write_json

    tile, threshold, masks = settings["tile"], settings["threshold"], settings["masks"]
    rows, evaluation, stems = [], [], set()
    pooled_truth, pooled_proba, crack_in, crack_total = [], [], 0, 0
    for path, done in zip(paths, tqdm(results, total=len(paths), desc="scan", unit="photo", disable=not progress,
                                      leave=False), strict=True):
        stem = os.path.splitext(os.path.basename(path))[0]
        unique, k = stem, 2
        while unique in stems:  # the same name in two folders: keep both
            unique, k = f"{stem}_{k}", k + 1
        stems.add(unique)
        rows.append({**done["row"], "outputs": unique if done["files"] else ""})
        for suffix, data in done["files"].items():
            with atomic_path(os.path.join(out, unique + suffix)) as tmp:
                tmp.write_bytes(data)
        if "evaluation" in done:
            evaluation.append(done["evaluation"])
        if "truth" in done:
            pooled_truth.append(done["truth"])
            pooled_proba.append(done["proba"])
            crack_in, crack_total = crack_in + done["crack_pixels"][0], crack_total + done["crack_pixels"][1]
    columns = ["photo", "width", "height", "tiles", "cracked_tiles", "max_probability", "seconds", "error"]
    with atomic_path(os.path.join(out, "scan.csv")) as tmp:
        pd.DataFrame(rows, columns=[*columns, "detail", "outputs", "notes"])[columns].to_csv(
            tmp, index=False, lineterminator="\n")
    payload = {"model": model.name, "settings": {"tile": tile, "stride": settings["stride"] or max(1, tile // 2),
                                                 "scale": settings["scale"], "threshold": threshold,
                                                 "min_crack_fraction": settings["min_crack_fraction"]},
               "photos": rows}
    if masks is not None:
        overall = (tile_metrics(np.concatenate(pooled_truth), np.concatenate(pooled_proba), threshold)
                   if pooled_truth else {})
        overall["crack_pixel_recall"] = crack_in / crack_total if crack_total else float("nan")
        overall["photos_evaluated"] = len(pooled_truth)
        payload["evaluation"] = {"masks": os.fspath(masks), "overall": overall, "photos": evaluation}
        with atomic_path(os.path.join(out, "evaluation.csv")) as tmp:
            pd.DataFrame(evaluation).to_csv(tmp, index=False, lineterminator="\n")
    write_json(os.path.join(out, "scan.json"), payload)
    return payload
