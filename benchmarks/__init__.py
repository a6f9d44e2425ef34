"""crackbench.benchmarks: the harness that trains and evaluates every model on one split
(:func:`run_benchmark`, which computes ``results.json``), the reports rendered from it
(:func:`write_reports`), and speed benchmarks run as scripts (``python -m
crackbench.benchmarks.features``, ``python -m crackbench.benchmarks.latency``)."""

from .harness import collect_results, run_benchmark
from .report import compare_runs, load_results, write_reports

__all__ = ["collect_results", "compare_runs", "load_results", "run_benchmark", "write_reports"]
