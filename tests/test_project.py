"""Project-level checks that run with the suite: lint, and the oldest scikit-learn setup.cfg allows."""

import configparser
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_is_clean():
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    assert ruff, 'ruff is missing: pip install -e ".[dev]"'
    done = subprocess.run([ruff, "check", str(ROOT)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:]


def _oldest(requirement: str) -> str:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    line = next(ln for ln in cfg["options"]["install_requires"].splitlines() if ln.strip().startswith(requirement))
    return re.search(r">=\s*([\d.]+)", line).group(1)


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("CRACKBENCH_OLDEST_RUN") == "1", reason="already inside the oldest-version run")
def test_oldest_scikit_learn_allowed_passes_the_pipeline_tests(tmp_path_factory):
    """setup.cfg allows scikit-learn from its lower bound: install exactly that version beside the
    newest (into a folder first on the path) and run the tests that touch scikit-learn's internals
    (pipelines, the NumPy scoring tail, the estimator checks) against it."""
    version = _oldest("scikit-learn")
    target = ROOT / ".pytest_cache" / f"scikit-learn-{version}"
    if not (target / "sklearn").is_dir():
        done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
                               f"scikit-learn=={version}"], capture_output=True, text=True)
        assert done.returncode == 0, f"could not install scikit-learn=={version}: {done.stderr[-2000:]}"
    env = {**os.environ, "PYTHONPATH": str(target), "CRACKBENCH_OLDEST_RUN": "1"}
    probe = subprocess.run([sys.executable, "-c", "import sklearn; print(sklearn.__version__)"], env=env,
                           capture_output=True, text=True)
    assert Version(probe.stdout.strip()) == Version(version), probe.stderr
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "tests/test_pipelines.py", "tests/test_features_estimators.py", "tests/test_metrics.py"],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-4000:]
