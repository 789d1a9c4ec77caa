"""Doctest collection of the package: skip the modules whose optional dependency is not installed."""

import importlib.util

collect_ignore = [] if importlib.util.find_spec("torch") else ["convlab/torch.py"]
