"""Doctest collection of optional-extra modules only where the extra is installed."""

import importlib.util

collect_ignore = [] if importlib.util.find_spec("dask") else ["convlab/dask.py"]
