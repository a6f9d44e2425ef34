"""crackbench.cluster: feature extraction, prediction and scanning on a real Dask LocalCluster
(2 worker processes) give exactly what the local joblib path gives, bad files included; a worker
that dies is replaced and its work redone; work lost for good fails loudly."""

from __future__ import annotations

import os
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from crackbench.cli import main
from crackbench.cluster import ClusterError, scheduler_spec
from crackbench.errors import UsageError
from crackbench.features import EdgeFeatures, extract, make_feature_set
from crackbench.imageio import ImageError
from crackbench.model import predict_files
from crackbench.registry import load_model, resolve_model
from crackbench.scan import scan_files
from crackbench.synthetic import make_synthetic_dataset, make_synthetic_photos

distributed = pytest.importorskip("distributed", reason="the dask extra is not installed (pip install '.[dask]')")


@pytest.fixture(scope="module")
def cluster():
    from distributed import Client, LocalCluster

    from crackbench._worker import WorkerSetup

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as lc, \
            Client(lc) as client:
        client.register_plugin(WorkerSetup(), name="crackbench-worker-setup")
        yield lc, client


@pytest.fixture()
def connected(cluster):
    """crackbench.cluster.connect to the module's cluster (by its address, as a user would)."""
    from crackbench.cluster import connect

    with connect(cluster[0].scheduler_address) as client:
        yield client


@contextmanager
def _locally():
    """Inside a connected test: run the local (joblib) path for comparison."""
    from crackbench.cluster import _CLIENT

    token = _CLIENT.set(None)
    try:
        yield
    finally:
        _CLIENT.reset(token)


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> list[str]:
    root = tmp_path_factory.mktemp("cluster-data")
    make_synthetic_dataset(root / "patches", n=300, seed=3, size=96)
    paths = sorted(str(p) for p in (root / "patches").rglob("*.jpg"))
    (root / "broken.jpg").write_bytes(b"not a jpeg at all")
    # bad files in the middle, so that order and accounting are both checked
    return [*paths[:150], str(root / "broken.jpg"), str(root / "missing.jpg"), *paths[150:]]


def test_extract_on_the_cluster_is_identical_to_joblib(images, connected):
    good = [p for p in images if "patches" in p]
    extractor = make_feature_set("combined")
    on_cluster = extract(good, extractor, progress=False, chunk_size=64)
    with _locally():
        local = extract(good, extractor, n_jobs=2, progress=False, chunk_size=64)
    np.testing.assert_array_equal(on_cluster, local)
    with pytest.raises(ImageError, match=r"broken\.jpg"):  # the same error as locally, naming the file
        extract(images, extractor, progress=False)


def test_predict_on_the_cluster_is_identical_with_bad_files_in_order(images, connected):
    model = load_model(resolve_model(None))
    assert model.source == "builtin:edges-svm"
    on_cluster = list(predict_files(model, images))
    with _locally():
        local = list(predict_files(model, images))
    pd.testing.assert_frame_equal(pd.DataFrame(map(asdict, on_cluster)), pd.DataFrame(map(asdict, local)))
    assert [r.path for r in on_cluster] == images
    assert {r.error for r in on_cluster} == {"", "not-an-image", "unreadable"}


def test_scan_on_the_cluster_writes_the_same_files(tmp_path, connected):
    make_synthetic_photos(tmp_path / "photos", n=2, seed=1, width=640, height=480)
    (tmp_path / "photos" / "images" / "zz-broken.jpg").write_bytes(b"\xff\xd8 truncated")
    paths = sorted(str(p) for p in (tmp_path / "photos" / "images").iterdir())
    model = load_model(resolve_model(None))
    kwargs = {"masks": tmp_path / "photos" / "masks", "progress": False}
    on_cluster = scan_files(model, paths, tmp_path / "dask", **kwargs)
    with _locally():
        local = scan_files(model, paths, tmp_path / "local", **kwargs)
    files = sorted(p.name for p in (tmp_path / "local").iterdir())
    assert files == sorted(p.name for p in (tmp_path / "dask").iterdir())
    assert len(files) == 2 * 4 + 3  # four per photo; scan.csv, scan.json, evaluation.csv
    for name in files:
        if name not in ("scan.csv", "scan.json"):  # those two hold wall-clock seconds
            assert (tmp_path / "local" / name).read_bytes() == (tmp_path / "dask" / name).read_bytes(), name
    a, b = pd.read_csv(tmp_path / "local" / "scan.csv"), pd.read_csv(tmp_path / "dask" / "scan.csv")
    pd.testing.assert_frame_equal(a.drop(columns="seconds"), b.drop(columns="seconds"))
    assert a["error"].fillna("").tolist() == ["", "", "not-an-image"]
    assert on_cluster["evaluation"]["overall"] == local["evaluation"]["overall"]


def test_workers_run_single_threaded_with_warm_kernels(cluster):
    def probe():
        import cv2
        from threadpoolctl import threadpool_info

        from crackbench.cluster import setup_worker_process

        return (cv2.getNumThreads(), sorted({p["num_threads"] for p in threadpool_info()}),
                setup_worker_process.cache_info().currsize)

    for threads, pools, setups in cluster[1].run(probe).values():
        assert threads == 1 and pools in ([], [1]) and setups == 1


class DyingEdges(EdgeFeatures):
    """Edge features whose worker process dies abruptly while computing them: once (``marker``
    absent), or every time (``marker`` is None)."""

    def __init__(self, marker=None, **kwargs):
        super().__init__(**kwargs)
        self.marker = marker

    def transform(self, X):
        if self.marker is None or not os.path.exists(self.marker):
            if self.marker is not None:
                Path(self.marker).touch()
            os._exit(1)
        return super().transform(X)


def test_a_worker_that_dies_is_replaced_and_its_chunk_redone(images, connected, tmp_path):
    good = [p for p in images if "patches" in p][:200]
    feats = extract(good, DyingEdges(marker=str(tmp_path / "died")), progress=False, chunk_size=50)
    assert (tmp_path / "died").exists()
    np.testing.assert_array_equal(feats, EdgeFeatures().transform([_gray(p) for p in good]))


def test_work_lost_for_good_fails_naming_the_files(images, connected):
    def set_failures(n, dask_scheduler=None):
        old, dask_scheduler.allowed_failures = dask_scheduler.allowed_failures, n
        return old

    old = connected.run_on_scheduler(set_failures, 0)
    try:
        with pytest.raises(ClusterError, match=r"lost the task for 40 files, .*Negative"):
            extract([p for p in images if "patches" in p][:40], DyingEdges(), progress=False, chunk_size=40)
    finally:
        connected.run_on_scheduler(set_failures, old)
    connected.wait_for_workers(2, timeout=60)


def test_a_model_without_a_file_cannot_go_to_the_workers(images, connected):
    model = load_model(resolve_model(None))
    model.source = None
    with pytest.raises(ValueError, match="not loaded from a file"):
        list(predict_files(model, images[:3]))


def test_cli_honours_dask_scheduler_address(images, cluster, monkeypatch, capsys):
    monkeypatch.chdir(Path(images[0]).parents[2])
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", cluster[0].scheduler_address)
    assert main(["predict", "--csv", *images]) == 0
    on_cluster = capsys.readouterr().out
    assert main(["predict", "--csv", "--scheduler", "none", *images]) == 0
    assert capsys.readouterr().out == on_cluster
    assert on_cluster.count("\n") == len(images) + 1


@pytest.mark.parametrize("spec", ["local:0", "local:x", "locale"])
def test_malformed_local_scheduler_is_a_usage_error(spec):
    with pytest.raises(UsageError, match="local:N"):
        scheduler_spec(spec)


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_without_a_scheduler_dask_distributed_is_never_imported(images):
    # (scikit-learn's array-API layer imports the core `dask` package by itself when it is installed)
    done = _run(f"import sys; from crackbench.cli import main; main(['predict', '--csv', {images[0]!r}]); "
                "sys.exit(1 if 'distributed' in sys.modules else 0)")
    assert done.returncode == 0, done.stderr


def test_scheduler_without_the_extra_says_so_in_one_line(images):
    done = _run("import sys; sys.modules['distributed'] = None; from crackbench.cli import main; "
                f"sys.exit(main(['predict', '--scheduler', 'local:2', {images[0]!r}]))")
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert lines == ["crackbench: error: --scheduler local:2 needs Dask, which is not installed: "
                     "pip install 'crackbench[dask]'"]


def _gray(path):
    from crackbench.imageio import read_image

    return read_image(path, mode="gray")


def test_benchmark_on_the_cluster_gives_the_local_results(cluster, tmp_path):
    from crackbench.benchmarks import run_benchmark
    from crackbench.cluster import connect

    kwargs = {"models": ["edges-svm"], "n_synthetic": 80, "n_jobs": 2, "progress": False}
    local = run_benchmark(tmp_path / "local", **kwargs)
    from distributed import get_task_stream

    with connect(cluster[0].scheduler_address) as client, get_task_stream(client) as stream:
        remote = run_benchmark(tmp_path / "dask", **kwargs)
    done = {t["key"].split("-")[0] for t in stream.data}
    assert "_run_task" in done  # features and scans went to the workers
    for part in ("test", "scan"):
        a, b = local["models"][0][part], remote["models"][0][part]
        if part == "scan":  # wall-clock seconds differ; what was scanned and found must not
            a, b = ({k: v for k, v in x.items() if k not in ("seconds", "overlays")} for x in (a, b))
        assert a == b
    assert (tmp_path / "dask" / "models" / "edges-svm" / "scan" / "scan.csv").is_file()
