"""crackbench.benchmarks: the harness that trains and evaluates every model on one split
(:func:`run_benchmark`, which computes ``results.json``), the train x test matrix over several
datasets (:func:`run_matrix`), the labels-needed curve (:func:`run_adapt`), the reports rendered
from them (``write_*_reports``), and speed benchmarks run as scripts (``python -m
crackbench.benchmarks.features``, ``latency``, ``scan``, ``duplicates``)."""

from .harness import collect_results, run_benchmark
from .matrix import run_adapt, run_matrix
from .report import compare_runs, load_results, write_adapt_reports, write_matrix_reports, write_reports

__all__ = ["collect_results", "compare_runs", "load_results", "run_adapt", "run_benchmark", "run_matrix",
           "write_adapt_reports", "write_matrix_reports", "write_reports"]
