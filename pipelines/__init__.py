"""crackbench.pipelines"""
