"""crackbench.benchmarks: the harness that trains and evaluates every model on one split, its
metrics and reports, and the feature speed benchmark (``python -m crackbench.benchmarks.features``)."""

from .harness import load_any_model, run_benchmark
from .report import collect_results, compare_runs, write_reports

__all__ = ["collect_results", "compare_runs", "load_any_model", "run_benchmark", "write_reports"]
