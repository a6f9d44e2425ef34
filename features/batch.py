"""Batch feature extraction from files: parallel (joblib), chunked, cached on disk."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.pipeline import FeatureUnion
from tqdm.auto import tqdm

from crackbench import __version__
from crackbench.cluster import CHUNK_IMAGES, active_client
from crackbench.cluster import chunks as split_chunks
from crackbench.files import atomic_path, exit_with_parent, write_json
from crackbench.imageio import DEFAULT_MAX_PIXELS, decode_image, read_bytes
from crackbench.manifest import read_manifest

__all__ = ["DecodeOnly", "FeatureCache", "cache_info", "clear_cache", "default_cache_dir", "extract", "extractor_key",
           "save_features"]


def default_cache_dir() -> Path:
    """``$CRACKBENCH_CACHE``, else ``$XDG_CACHE_HOME/crackbench`` (``~/.cache/crackbench``)."""
    if os.environ.get("CRACKBENCH_CACHE"):
        return Path(os.environ["CRACKBENCH_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "crackbench"


def _fingerprint(obj):
    """JSON-able description of an estimator and its parameters, nested estimators included."""
    if hasattr(obj, "get_params") and not isinstance(obj, type):
        params = obj.get_params(deep=False)
        return {"class": f"{type(obj).__module__}.{type(obj).__qualname__}",
                "params": {k: _fingerprint(v) for k, v in sorted(params.items())}}
    if isinstance(obj, (list, tuple)):
        return [_fingerprint(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): _fingerprint(v) for k, v in sorted(obj.items())}
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return repr(obj)


def extractor_key(extractor, mode: str = "gray") -> str:
    """Cache key of an extractor: its class and parameters, the decode mode, crackbench's version."""
    desc = {"extractor": _fingerprint(extractor), "mode": mode, "crackbench": __version__}
    return hashlib.sha256(json.dumps(desc, sort_keys=True).encode()).hexdigest()[:24]


class FeatureCache:
    """Append-only on-disk store of feature rows keyed by file sha256, one folder per extractor key.

    Each extraction run that computes new rows adds one segment: ``<id>.feats.npy`` (float32
    rows) then ``<id>.keys.npy`` (their sha256 digests), each written to a temporary name and
    renamed, keys last, so a crash never leaves a readable half segment. Lookups memory-map the
    segments. A changed file has a new sha256 and a changed parameter a new folder, so only what
    changed is recomputed. ``meta.json`` records which extractor and crackbench version wrote the
    folder; when a new version first writes to a cache root, it removes the folders other
    versions wrote (their keys can never match again).
    """

    def __init__(self, root: str | os.PathLike, key: str, description: str = ""):
        self.root = Path(root)
        self.dir = self.root / key
        self.description = description
        self._index: dict[str, tuple[int, int]] | None = None
        self._feats: list[np.ndarray] = []

    def _load(self) -> dict[str, tuple[int, int]]:
        if self._index is None:
            self._index, self._feats = {}, []
            for keys_file in sorted(self.dir.glob("*.keys.npy")):
                feats_file = keys_file.with_name(keys_file.name.replace(".keys.", ".feats."))
                keys = np.load(keys_file)
                self._feats.append(np.load(feats_file, mmap_mode="r"))
                for row, k in enumerate(keys):
                    self._index[str(k)] = (len(self._feats) - 1, row)
        return self._index

    def __contains__(self, sha: str) -> bool:
        return sha in self._load()

    def get(self, sha: str) -> np.ndarray:
        seg, row = self._load()[sha]
        return self._feats[seg][row]

    def add(self, shas: Sequence[str], feats: np.ndarray) -> None:
        if not len(shas):
            return
        _prune_once(self.root)
        if not (self.dir / "meta.json").is_file():
            write_json(self.dir / "meta.json", {"crackbench": __version__, "extractor": self.description})
        seg = uuid.uuid4().hex
        for suffix, arr in (("feats", np.asarray(feats, np.float32)), ("keys", np.asarray(shas, "U64"))):
            with atomic_path(self.dir / f"{seg}.{suffix}.npy") as tmp:
                np.save(tmp, arr)
        self._index = None


def _folder_version(folder: Path) -> str | None:
    try:
        return json.loads((folder / "meta.json").read_text()).get("crackbench")
    except (OSError, ValueError, AttributeError):
        return None  # written before crackbench 0.4, or damaged


def cache_info(root: str | os.PathLike) -> list[dict]:
    """One row per cached feature set under ``root``: key, extractor, the crackbench version that
    wrote it, rows, bytes on disk, and whether this version can use it."""
    rows = []
    for folder in sorted(p for p in Path(root).glob("*") if p.is_dir()):
        version = _folder_version(folder)
        try:
            extractor = json.loads((folder / "meta.json").read_text()).get("extractor", "")
        except (OSError, ValueError, AttributeError):
            extractor = ""
        n = sum(len(np.load(k, mmap_mode="r")) for k in folder.glob("*.keys.npy"))
        rows.append({"key": folder.name, "extractor": extractor, "crackbench": version or "< 0.4",
                     "rows": n, "bytes": sum(f.stat().st_size for f in folder.iterdir() if f.is_file()),
                     "current": version == __version__})
    return rows


def clear_cache(root: str | os.PathLike, *, stale_only: bool = False) -> tuple[int, int]:
    """Remove the cached feature sets under ``root`` (with ``stale_only``, only those written by
    another crackbench version); returns (folders removed, bytes freed)."""
    removed = freed = 0
    for row in cache_info(root):
        if stale_only and row["current"]:
            continue
        shutil.rmtree(Path(root) / row["key"], ignore_errors=True)
        removed, freed = removed + 1, freed + row["bytes"]
    return removed, freed


@functools.cache
def _prune_once(root: Path) -> None:
    """Remove other versions' feature sets the first time this process writes under ``root``."""
    if root.is_dir():
        clear_cache(root, stale_only=True)


class DecodeOnly(TransformerMixin, BaseEstimator):
    """A no-op extractor (one constant column) to time reading and decoding alone."""

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return np.zeros((len(X), 1), np.float32)


def _extract_chunk(paths, extractor, mode, max_pixels):
    exit_with_parent()
    images, shas = [], []
    for p in paths:
        data = read_bytes(p)
        shas.append(hashlib.sha256(data).hexdigest())
        images.append(decode_image(data, mode=mode, max_pixels=max_pixels, name=p))
    return np.asarray(extractor.transform(images), np.float32), shas


def _paths_and_shas(source) -> tuple[list[str], list[str] | None]:
    if isinstance(source, (str, os.PathLike)) and str(source).endswith(".csv"):
        source = read_manifest(source)
    if isinstance(source, pd.DataFrame):
        return [str(p) for p in source["path"]], list(source["sha256"]) if "sha256" in source else None
    if isinstance(source, (str, os.PathLike)):
        raise ValueError(f"expected a manifest .csv, a DataFrame or a list of image paths, got {source!r}")
    return [str(p) for p in source], None


def extract(
    source,
    extractor,
    *,
    n_jobs: int = -1,
    chunk_size: int = CHUNK_IMAGES,
    cache_dir: str | os.PathLike | None = None,
    mode: str = "gray",
    max_pixels: int = DEFAULT_MAX_PIXELS,
    progress: bool = True,
) -> np.ndarray:
    """Decode files and compute ``extractor.transform`` on them, in parallel and bounded memory.

    Parameters
    ----------
    source : manifest path (.csv), manifest DataFrame, or sequence of image paths
        Rows of the result follow this order.
    extractor : transformer
        Any transformer taking a list of images (e.g. :class:`HOGFeatures`, a FeatureUnion).
    n_jobs : int
        joblib workers (``-1``: all cores). Inside a :func:`crackbench.cluster.connect` block the
        chunks go to the Dask workers instead (which read the files from their paths) and
        ``n_jobs`` is not used.
    chunk_size : int
        Images decoded per task; at most about two chunks per worker are in flight at once.
    cache_dir : path or None
        Reuse and extend a :class:`FeatureCache` there; rows are keyed by file sha256, so
        duplicate files are computed once.
    mode : {"gray", "rgb"}
        How files are decoded before ``transform``.

    Returns
    -------
    features : float32 ndarray (n_files, n_features)

    Raises
    ------
    crackbench.imageio.ImageError
        Naming the first file that cannot be decoded (manifest files were checked when the
        manifest was written; an error here means the data changed since).
    """
    paths, shas = _paths_and_shas(source)
    if not paths:
        raise ValueError("no images to extract features from")
    if (cache_dir is not None and isinstance(extractor, FeatureUnion) and not extractor.transformer_weights
            and all(t != "drop" for _, t in extractor.transformer_list)):
        # Same columns as union.transform, but each part uses (and fills) its own cache, so
        # "combined" costs nothing after "hog", "lbp" and "edges" have run.
        source = pd.DataFrame({"path": paths, "sha256": shas}) if shas is not None else paths
        return np.hstack([extract(source, t, n_jobs=n_jobs, chunk_size=chunk_size, cache_dir=cache_dir,
                                  mode=mode, max_pixels=max_pixels, progress=progress)
                          for _, t in extractor.transformer_list])
    cache = (FeatureCache(cache_dir, extractor_key(extractor, mode), f"{type(extractor).__name__} ({mode})")
             if cache_dir is not None else None)
    if cache is not None and shas is None:
        shas = [hashlib.sha256(read_bytes(p)).hexdigest() for p in paths]
    todo, seen = [], set()
    for i, _p in enumerate(paths):
        key = shas[i] if shas is not None else None
        if cache is not None and key in cache:
            continue
        if key is not None and key in seen:
            continue
        seen.add(key)
        todo.append(i)

    out: np.ndarray | None = None
    chunks = split_chunks(todo, chunk_size)
    bar = tqdm(total=len(todo), desc=f"features {type(extractor).__name__}", unit="img",
               disable=not progress or not todo, leave=False)
    client = active_client()
    if client is not None and chunks:
        from crackbench.cluster import check_readable, describe_paths, map_ordered

        check_readable(client, [paths[todo[0]]])
        results = map_ordered(client, _extract_chunk, [[paths[i] for i in chunk] for chunk in chunks], extractor,
                              mode, max_pixels, describe=describe_paths)
    else:
        results = Parallel(n_jobs=n_jobs, return_as="generator")(
            delayed(_extract_chunk)([paths[i] for i in chunk], extractor, mode, max_pixels) for chunk in chunks)
    todo_shas: list[str] = []
    for chunk, (feats, chunk_shas) in zip(chunks, results, strict=True):
        if out is None:
            out = np.empty((len(paths), feats.shape[1]), np.float32)
        out[chunk] = feats
        todo_shas += chunk_shas
        bar.update(len(chunk))
    bar.close()
    if cache is not None:
        cache.add(todo_shas, out[todo] if todo else np.empty((0, 0), np.float32))
    if out is None:  # everything came from the cache
        out = np.empty((len(paths), cache.get(shas[0]).shape[0]), np.float32)
    done = set(todo)
    row_of = {sha: i for i, sha in zip(todo, todo_shas, strict=True)}
    for i in range(len(paths)):
        if i not in done:  # a duplicate of a computed file, or a cache hit
            out[i] = out[row_of[shas[i]]] if shas[i] in row_of else cache.get(shas[i])
    return out


def save_features(out: str | os.PathLike, features: np.ndarray, names, manifest: pd.DataFrame) -> Path:
    """Write features beside their manifest rows: ``.parquet`` (one column per feature after
    ``path,label,split,sha256``) or ``.npz`` (arrays ``X``, ``names``, ``path``, ``label``,
    ``split``, ``sha256``)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = manifest[["path", "label", "split", "sha256"]].reset_index(drop=True)
    if out.suffix == ".parquet":
        table = pd.concat([meta, pd.DataFrame(features, columns=list(names))], axis=1)
        table.to_parquet(out, index=False)
    elif out.suffix == ".npz":
        np.savez_compressed(out, X=features, names=np.asarray(names, str),
                            **{c: meta[c].to_numpy(str) for c in meta.columns})
    else:
        raise ValueError(f"--out must end in .parquet or .npz, got {out.name!r}")
    return out
