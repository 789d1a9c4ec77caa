"""The version, in one place: ``pyproject.toml`` reads it from here (``[tool.setuptools.dynamic]``).

Caches on disk are stamped with it, so bump it whenever a change alters what a cache records.
"""

__version__ = "0.2.0"
