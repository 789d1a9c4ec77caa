"""The convolution methods, one module each, behind one registry (see :mod:`.base`).

Importing this package registers every method; the order below is the
registration order reported by :func:`convlab.methods`. (The package is
called ``algorithms`` because ``convlab.methods`` is the function that lists
them.)
"""

from .base import DOMAINS, Method, Verdict, WeightDerived, get_method, methods, register, runnable, unregister, verdict, verdicts
from .costs import CONSTANT_NAMES, DEFAULT_CONSTANTS, CostTerms
from . import direct  # noqa: E402  (registers "direct")
from . import im2col  # noqa: E402  (registers "im2col")
from . import toeplitz  # noqa: E402  (registers "toeplitz")
from . import winograd  # noqa: E402  (registers "winograd")
from . import fft  # noqa: E402  (registers "fft")
from . import fft_tiled  # noqa: E402  (registers "fft_tiled")

__all__ = ["DOMAINS", "Method", "Verdict", "WeightDerived", "get_method", "methods", "register", "runnable",
           "unregister", "verdict", "verdicts", "CONSTANT_NAMES", "DEFAULT_CONSTANTS", "CostTerms"]
