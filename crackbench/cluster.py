"""Running crackbench's batch work on a Dask cluster (the optional ``dask`` extra).

Inside ``with connect("tcp://scheduler:8786"):`` (or ``connect("local:2")``, a
:class:`distributed.LocalCluster` of 2 worker processes on this machine),
:func:`crackbench.features.extract`, :func:`crackbench.model.predict_files` and
:func:`crackbench.scan.scan_files` send their work to that cluster:

- in chunks of many images per task (:data:`CHUNK_IMAGES`, :data:`CHUNK_PHOTOS`); a task gets
  file *paths* and the workers read the files themselves, so the data must live where every worker
  can read it (a shared file system or a mounted object store);
- each worker process runs with one BLAS/OpenMP/OpenCV thread and compiles the numba kernels once
  when it starts (:func:`setup_worker_process`); a model is loaded once per worker, from its file, safely;
- results come back in input order, with the same per-file error rows as the local path. A worker
  that dies has its tasks rerun by Dask on the others; a task that still cannot finish fails the
  whole call with :class:`ClusterError` naming the files it held, never a silently short result.

Outside such a block nothing changes and Dask is never imported.
"""

from __future__ import annotations

import contextvars
import functools
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager

from .errors import CrackbenchError, UsageError

__all__ = ["CHUNK_IMAGES", "CHUNK_PHOTOS", "SCHEDULER_ENV", "ClusterError", "active_client", "connect", "map_ordered",
           "require_dask", "scheduler_spec", "setup_worker_process"]

#: The environment variable Dask itself reads for the scheduler's address.
SCHEDULER_ENV = "DASK_SCHEDULER_ADDRESS"
#: Patches per task for feature extraction and prediction. On the 2-core reference machine 64 to 256
#: gave 1,000-1,220 images/s over four runs, 256 ahead of 128 by 2-11%, and 32 less
#: (``python -m crackbench.benchmarks.scaling``, docs/cluster.md); 128 keeps a task's memory small
#: and the load even across more workers.
CHUNK_IMAGES = 128
#: Whole photographs per scan task: one 12 MP photo is about a second of work already.
CHUNK_PHOTOS = 1

_CLIENT: contextvars.ContextVar = contextvars.ContextVar("crackbench_dask_client", default=None)


class ClusterError(CrackbenchError):
    """The cluster could not be reached, or lost work it could not redo; nothing partial was written."""


def require_dask(what: str = "--scheduler") -> None:
    """Raise a one-line :class:`UsageError` when the ``dask`` extra is not installed."""
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise UsageError(f"{what} needs Dask, which is not installed: pip install 'crackbench[dask]'") from None


def scheduler_spec(option: str | None) -> str | None:
    """The scheduler to use: the ``--scheduler`` value, else ``$DASK_SCHEDULER_ADDRESS``, else
    ``None`` (run locally). ``"none"`` forces the local path whatever the environment says."""
    spec = option if option is not None else os.environ.get(SCHEDULER_ENV) or None
    if spec is None or spec.strip().lower() == "none":
        return None
    spec = spec.strip()
    if spec.startswith("local"):
        _local_workers(spec)  # a malformed local:N fails here, before any work
    source = "--scheduler" if option is not None else f"${SCHEDULER_ENV}"
    require_dask(f"{source} {spec}")
    return spec


def _local_workers(spec: str) -> int:
    import joblib

    name, _, n = spec.partition(":")
    if name != "local" or (n and not (n.isdigit() and int(n) >= 1)):
        raise UsageError(f"--scheduler {spec!r}: expected an address (tcp://host:8786), local or local:N (N >= 1)")
    return int(n) if n else joblib.cpu_count()


def active_client():
    """The :class:`distributed.Client` of the innermost :func:`connect` block, or ``None``."""
    return _CLIENT.get()


@contextmanager
def connect(spec: str) -> Iterator:
    """Connect to the Dask scheduler at ``spec`` (an address such as ``tcp://10.0.0.5:8786``), or
    start a :class:`distributed.LocalCluster` for ``local[:N]`` (N worker processes, one thread
    each; default one per core), make it the client crackbench's batch functions use, and close it
    (and the local cluster) at the end of the block."""
    require_dask()
    import logging
    from contextlib import ExitStack

    from distributed import Client, LocalCluster

    from ._worker import WorkerSetup

    with ExitStack() as stack:
        if spec.startswith("local"):
            cluster = stack.enter_context(LocalCluster(
                n_workers=_local_workers(spec), threads_per_worker=1, processes=True, dashboard_address=None,
                silence_logs=logging.ERROR))
            client = stack.enter_context(Client(cluster))
        else:
            try:
                client = stack.enter_context(Client(spec, timeout="20s"))
            except (OSError, TimeoutError) as exc:
                raise ClusterError(f"cannot reach the Dask scheduler at {spec}: {exc}") from None
        client.register_plugin(WorkerSetup(), name="crackbench-worker-setup")
        token = _CLIENT.set(client)
        try:
            yield client
        finally:
            _CLIENT.reset(token)


@functools.cache
def setup_worker_process() -> None:
    """Single-threaded native libraries, glibc's usual heap behaviour and warm feature kernels in
    this process (idempotent). Every task calls it too, so a worker without the plugin is set up by
    its first task."""
    import cv2
    import numpy as np
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    cv2.setNumThreads(1)
    _heap_for_images()
    from crackbench.features import make_feature_set

    make_feature_set("combined").transform([np.zeros((64, 64), np.uint8)])


def _heap_for_images() -> None:
    """Dask's nannies start workers with ``MALLOC_TRIM_THRESHOLD_=65536``, which turns glibc's
    dynamic mmap threshold off: every decoded image is then a fresh ``mmap`` and page faults, which
    slowed feature extraction down markedly on the reference machine. Fixed thresholds (images up
    to 32 MiB come from the heap, up to 64 MiB of free heap is kept) bring the speed back, whatever
    environment the worker was started with. A no-op off glibc."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    mallopt(m_mmap_threshold, 32 * 2**20)
    mallopt(m_trim_threshold, 64 * 2**20)


def _run_task(func: Callable, item, *args):
    setup_worker_process()
    return func(item, *args)


def _lost(exc: BaseException) -> bool:
    """Whether ``exc`` means the cluster lost a task (rather than the task raising)."""
    from concurrent.futures import CancelledError

    from distributed import KilledWorker
    from distributed.comm.core import CommClosedError

    return isinstance(exc, (KilledWorker, CancelledError, CommClosedError, TimeoutError))


def check_readable(client, paths: Sequence[str]) -> None:
    """Fail up front when a worker cannot see the files it will be sent (they are not on a shared
    file system): checks the first of ``paths`` that exists here. A missing file is left to the
    task, which reports it in its row."""
    path = next((p for p in paths if os.path.isfile(p)), None)
    if path is None:
        return
    seen = client.run(os.path.exists, os.path.abspath(path))
    blind = sorted(w for w, ok in seen.items() if not ok)
    if blind:
        raise ClusterError(f"{len(blind)} of {len(seen)} Dask workers cannot read {path} (e.g. {blind[0]}): "
                           f"the data must be on a file system or object store every worker can read")


def map_ordered(client, func: Callable, items: Iterable, *args, describe: Callable[[object], str] = repr,
                window: int | None = None) -> Iterator:
    """``func(item, *args)`` for each item on the cluster, yielded in input order.

    At most ``window`` tasks are in flight (default: two per worker thread), so results stream back
    with bounded memory. A task that raises re-raises here with its own exception; a task the
    cluster lost for good (its workers kept dying) raises :class:`ClusterError` naming
    ``describe(item)`` after cancelling the rest."""
    if window is None:
        window = 2 * max(1, sum(client.nthreads().values()))
    source = iter(items)
    pending: deque = deque()

    def submit_next() -> None:
        for item in source:
            pending.append((item, client.submit(_run_task, func, item, *args, pure=False)))
            return

    for _ in range(window):
        submit_next()
    while pending:
        item, future = pending.popleft()
        submit_next()
        try:
            result = future.result()
        except BaseException as exc:
            for _, other in pending:
                other.cancel()
            if _lost(exc):
                raise ClusterError(f"the Dask cluster lost the task for {describe(item)} and could not redo it "
                                   f"({type(exc).__name__}: {exc}); no output was written for the run") from None
            raise
        yield result


def describe_paths(paths: Sequence[str]) -> str:
    """``'a.jpg'`` or ``'3 files, a.jpg ... c.jpg'``, for error messages."""
    if len(paths) == 1:
        return repr(paths[0])
    return f"{len(paths)} files, {paths[0]!r} ... {paths[-1]!r}"


def chunks(items: Sequence, size: int) -> list:
    return [items[i:i + size] for i in range(0, len(items), size)]


# ---------------------------------------------------------------- models on workers
@functools.lru_cache(maxsize=4)
def _worker_model(source: str):
    from .registry import load_model, resolve_model

    return load_model(resolve_model(source.removeprefix("builtin:")) if source.startswith("builtin:") else source)


def model_source(model) -> str:
    """How a worker loads ``model``: its built-in name or the file it was loaded from."""
    source = getattr(model, "source", None)
    if source is None:
        raise ValueError(f"{model!r} was not loaded from a file, so Dask workers cannot load it: save it and "
                         f"load it with crackbench.registry.load_model")
    return source


def _predict_chunk(paths: list[str], source: str, max_pixels: int) -> list:
    from .model import predict_files

    return list(predict_files(_worker_model(source), paths, max_pixels=max_pixels, n_jobs=1))  # one thread per worker


def _scan_chunk(paths: list[str], source: str, settings: dict) -> list:
    from .scan import scan_photo

    model = _worker_model(source)
    return [scan_photo(model, p, **settings, n_jobs=1) for p in paths]  # one core per worker


def _per_file(client, task: Callable, model, paths: Sequence[str], size: int, *args) -> Iterator:
    """``task(chunk, model source, *args)`` over ``paths`` in chunks of ``size``, one result per
    path, in order; the workers must see the files and the model file."""
    source = model_source(model)
    paths = list(paths)
    check_readable(client, paths)
    if not source.startswith("builtin:"):
        check_readable(client, [source])
    for results in map_ordered(client, task, chunks(paths, size), source, *args, describe=describe_paths):
        yield from results


def predict_on_cluster(client, model, paths: Sequence[str], *, max_pixels: int) -> Iterator:
    """:func:`crackbench.model.predict_files` on the cluster: one Prediction per path, in order."""
    return _per_file(client, _predict_chunk, model, paths, CHUNK_IMAGES, max_pixels)


def scan_on_cluster(client, model, paths: Sequence[str], settings: dict) -> Iterator:
    """:func:`crackbench.scan.scan_photo` for every photo on the cluster, in order."""
    return _per_file(client, _scan_chunk, model, paths, CHUNK_PHOTOS, settings)
