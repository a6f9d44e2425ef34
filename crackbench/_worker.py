"""The Dask worker plugin of :mod:`crackbench.cluster` (imported only when Dask is in use)."""

from __future__ import annotations

from distributed import WorkerPlugin

from .cluster import setup_worker_process


class WorkerSetup(WorkerPlugin):
    """Runs once in every worker process, also one that joins or restarts later:
    :func:`~crackbench.cluster.setup_worker_process` before the first task."""

    def setup(self, worker=None) -> None:
        setup_worker_process()
