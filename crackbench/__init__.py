"""crackbench: concrete-crack image classification benchmarks.

Data flows one way: ``crackbench`` (image I/O, dataset, split manifest, synthetic data)
-> ``crackbench.features`` -> ``crackbench.pipelines`` / ``crackbench.cnn`` -> ``crackbench.benchmarks``.
"""

__version__ = "0.7.1"
