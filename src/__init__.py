"""X3D video recognition in MindSpore."""
