"""convlab: the classic ways of computing a convolution behind one interface.

>>> import numpy as np, convlab as cl
>>> x = np.random.default_rng(0).standard_normal((2, 3, 16, 16))
>>> w = np.random.default_rng(1).standard_normal((4, 3, 3, 3))
>>> y = cl.conv(x, w, padding=1, method="direct")
>>> y.shape
(2, 4, 16, 16)
"""

from .errors import ConvError, ConvTypeError, UnsupportedPlanError, WorkspaceLimitError
from .workspace import get_workspace_limit, set_workspace_limit, workspace_limit
from .methods import Method, get_method, methods, register
from .plan import ConvGrads, ConvPlan, plan
from .api import conv, conv1d, conv2d, conv3d, conv_backward, conv_transpose, convolve
from .selection import choose_method
from .autotune import explain, get_autotune, set_autotune
from .fft_backends import fft_backend, get_fft_backend, set_fft_backend
from .threads import get_num_threads, num_threads, set_num_threads

__version__ = "0.1.0"

# Submodules with heavier imports (matplotlib, scipy.sparse, sklearn) load on first use: cl.nn, cl.report, ...
_LAZY_SUBMODULES = frozenset({"nn", "report", "operators", "datasets", "padding", "tolerances", "fft_backends"})


def __getattr__(name):
    if name in _LAZY_SUBMODULES:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "ConvError", "ConvTypeError", "UnsupportedPlanError", "WorkspaceLimitError",
    "get_workspace_limit", "set_workspace_limit", "workspace_limit",
    "Method", "get_method", "methods", "register",
    "ConvGrads", "ConvPlan", "plan",
    "conv", "conv1d", "conv2d", "conv3d", "conv_backward", "conv_transpose", "convolve",
    "choose_method", "explain", "get_autotune", "set_autotune",
    "fft_backend", "get_fft_backend", "set_fft_backend",
    "get_num_threads", "num_threads", "set_num_threads",
]
