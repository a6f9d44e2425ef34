"""crackbench.cnn"""
