"""crackbench.features"""
