"""The convolution methods, one module each, behind one registry (see :mod:`.base`).

Importing this package registers every method; the order of the imports
below is the registration order reported by :func:`convlab.methods` (so the
import sorter is told to keep it). The package is called ``algorithms``
because ``convlab.methods`` is the function that lists them.
"""

from .base import (
                   DOMAINS,
                   PASSES,
                   Method,
                   Verdict,
                   WeightDerived,
                   check_pass,
                   get_method,
                   methods,
                   register,
                   runnable,
                   unregister,
                   verdict,
                   verdicts,
)
from .costs import CONSTANT_NAMES, DEFAULT_CONSTANTS, DEFAULT_FACTORS, DEFAULT_OVERHEADS, CostTerms

# isort: off
from . import direct  # noqa: F401  (registers "direct")
from . import im2col  # noqa: F401  (registers "im2col")
from . import toeplitz  # noqa: F401  (registers "toeplitz")
from . import winograd  # noqa: F401  (registers "winograd")
from . import fft  # noqa: F401  (registers "fft")
from . import fft_tiled  # noqa: F401  (registers "fft_tiled")
# isort: on

__all__ = ["DOMAINS", "PASSES", "check_pass", "Method", "Verdict", "WeightDerived", "get_method", "methods",
           "register", "runnable", "unregister", "verdict", "verdicts", "CONSTANT_NAMES", "DEFAULT_CONSTANTS",
           "DEFAULT_FACTORS", "DEFAULT_OVERHEADS", "CostTerms"]
