"""crackbench.benchmarks"""
