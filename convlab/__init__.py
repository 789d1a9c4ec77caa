"""convlab: the classic ways of computing a convolution behind one interface.

>>> import numpy as np, convlab as cl
>>> x = np.random.default_rng(0).standard_normal((2, 3, 16, 16))
>>> w = np.random.default_rng(1).standard_normal((4, 3, 3, 3))
>>> y = cl.conv(x, w, padding=1, method="direct")
>>> y.shape
(2, 4, 16, 16)

The package is layered; each layer imports only the ones above it in this
list (``.importlinter`` states it, CI checks it):

1. ``errors``, ``checks``, ``config``: exceptions, single-value checks, process-wide settings;
2. ``padding``, then ``problem``: the padding modes, and the one validation layer (``ConvSpec``);
3. ``operators``, ``fft_backends``: the convolution as a matrix, and the FFT libraries;
4. ``algorithms``: the registry and one module per method;
5. ``tuning``: calibration, autotune and the choice for ``method="auto"``;
6. ``planning``: a spec bound to its method (``ConvPlan``);
7. ``api``: the functional interface;
8. ``nn``, ``report``, ``cli`` and the other applications.
"""

from ._version import __version__
from .algorithms import Method, get_method, methods, register
from .api import conv, conv1d, conv2d, conv3d, conv_backward, conv_transpose, convolve
from .config import get_autotune, get_workspace_limit, set_autotune, set_workspace_limit, workspace_limit
from .errors import ConvError, ConvTypeError, UnsupportedPlanError, WorkspaceLimitError
from .fft_backends import fft_backend, get_fft_backend, set_fft_backend
from .planning import ConvGrads, ConvPlan, plan
from .problem import ConvSpec, spec
from .threads import get_num_threads, num_threads, set_num_threads
from .tuning import choose_method, explain

# Submodules with heavier imports (matplotlib, scipy.sparse, sklearn) load on first use: cl.nn, cl.report, ...
_LAZY_SUBMODULES = frozenset({"nn", "report", "operators", "datasets", "padding", "tolerances", "fft_backends", "api",
                              "config", "signal", "dask"})


def __getattr__(name):
    if name in _LAZY_SUBMODULES:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "__version__",
    "ConvError", "ConvTypeError", "UnsupportedPlanError", "WorkspaceLimitError",
    "get_workspace_limit", "set_workspace_limit", "workspace_limit", "get_autotune", "set_autotune",
    "ConvSpec", "spec",
    "Method", "get_method", "methods", "register",
    "ConvGrads", "ConvPlan", "plan",
    "conv", "conv1d", "conv2d", "conv3d", "conv_backward", "conv_transpose", "convolve",
    "choose_method", "explain",
    "fft_backend", "get_fft_backend", "set_fft_backend",
    "get_num_threads", "num_threads", "set_num_threads",
]
