"""Writing files so that a reader never sees half of one: write a temporary file beside the
target, then rename it over the target (atomic on POSIX and Windows file systems)."""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_path", "exit_with_parent", "write_json"]


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``, on error it is
    removed and ``path`` is untouched. The temporary name keeps ``path``'s suffix (``x.tmp.npy``),
    for writers that insist on one (NumPy, Keras). Parent folders are created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.tmp-{os.getpid()}{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: str | os.PathLike, obj) -> Path:
    """``obj`` as indented JSON with sorted keys (NumPy scalars as floats), atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=float))
    return Path(path)


@functools.cache
def exit_with_parent(poll_s: float = 0.5) -> None:
    """In a worker process (joblib's loky workers): exit as soon as the process that started it is
    gone, so that killing crackbench with SIGKILL does not leave workers computing, and holding
    memory, for minutes. Starts one daemon thread per process; a no-op in the main process."""
    import multiprocessing
    import threading

    started_by = multiprocessing.parent_process()
    if started_by is None or started_by.pid is None:
        return
    parent = started_by.pid  # recorded when the worker started, so an orphan is caught even now

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        os._exit(1)

    threading.Thread(target=watch, name="crackbench-exit-with-parent", daemon=True).start()
