"""Compression recipes: YAML lists of steps (ptq-int8, prune, cluster, qat, ...) run in order."""
