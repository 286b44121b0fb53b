print("kernel-bench: not yet built")
