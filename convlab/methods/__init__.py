"""Convolution methods, one module each, behind one registry (see :mod:`.base`).

Importing this package registers every method; the order below is the
registration order reported by :func:`convlab.methods`.
"""

from .base import Method, get_method, methods, register
from . import direct  # noqa: F401  (registers "direct")
from . import im2col  # noqa: F401  (registers "im2col")
from . import toeplitz  # noqa: F401  (registers "toeplitz")
from . import winograd  # noqa: F401  (registers "winograd")
from . import fft  # noqa: F401  (registers "fft")
from . import fft_tiled  # noqa: F401  (registers "fft_tiled")

__all__ = ["Method", "get_method", "methods", "register"]
