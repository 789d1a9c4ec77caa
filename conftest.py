"""Doctest collection of optional-extra modules only where the extra is installed."""

import importlib.util

OPTIONAL = {"convlab/torch.py": "torch", "convlab/dask.py": "dask"}
collect_ignore = [path for path, module in OPTIONAL.items() if importlib.util.find_spec(module) is None]
