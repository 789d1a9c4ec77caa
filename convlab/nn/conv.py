"""Convolution layers running any registered method through a cached plan.

A layer builds one :class:`convlab.ConvPlan` per input shape and dtype (the
plan validates the problem once and keeps the methods' precomputation), and
keeps the most recent few on the layer. With ``method="auto"`` the plan
chooses a method for each pass (``y``, ``dx``, ``dw``); a named method runs all three. ``forward`` runs ``plan.forward``
and keeps the plan and the input; ``backward`` runs ``plan.backward`` on
them: ``dx`` is the transposed convolution of ``dy`` with ``w``, ``dw`` the
correlation of the input with ``dy`` (see ``docs/cnn.md``).
"""

import collections
import math

import numpy as np

from ..algorithms import get_method
from ..api import _freeze
from ..checks import check_ints, check_positive_int
from ..errors import ConvError
from ..padding import PADDING_MODES
from ..planning import plan
from ..problem import compute_dtype
from .init import as_generator, bias_uniform, kaiming_uniform
from .module import Module, Parameter, check_grad_shape

__all__ = ["Conv1d", "Conv2d", "Conv3d"]

# Plans kept per layer: a training run sees the batch shape, a smaller last
# batch and an evaluation batch; a few more entries cost nothing.
_PLANS_PER_LAYER = 8


def _kernel_size(value, ndim):
    return check_ints("kernel_size", value, ndim, 1)


def _channels(name, value):
    return check_positive_int(name, value)


class _ConvNd(Module):
    """Shared implementation of :class:`Conv1d`, :class:`Conv2d` and :class:`Conv3d`."""

    ndim = None

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, padding_mode="zeros", *, method="auto", dtype=np.float32, rng=None):
        super().__init__()
        self.in_channels = _channels("in_channels", in_channels)
        self.out_channels = _channels("out_channels", out_channels)
        self.groups = _channels("groups", groups)
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ConvError(f"groups={groups} must divide in_channels={in_channels} and out_channels={out_channels}")
        if padding_mode not in PADDING_MODES:
            raise ConvError(f"padding_mode must be one of {sorted(PADDING_MODES)}, but got {padding_mode!r}")
        self.kernel_size = _kernel_size(kernel_size, self.ndim)
        self.stride, self.padding, self.dilation = _freeze(stride), _freeze(padding), _freeze(dilation)
        self.padding_mode = padding_mode
        self._plans = collections.OrderedDict()
        self.method = method
        rng = as_generator(rng)
        fan_in = self.in_channels // self.groups * math.prod(self.kernel_size)
        w_shape = (self.out_channels, self.in_channels // self.groups, *self.kernel_size)
        self.weight = Parameter(kaiming_uniform(rng, w_shape, fan_in, dtype))
        self.bias = Parameter(bias_uniform(rng, self.out_channels, fan_in, dtype)) if bias else None

    @property
    def method(self):
        """The method name (or ``"auto"``) plans are built with; setting it drops the cached plans."""
        return self._method

    @method.setter
    def method(self, name):
        if name != "auto":
            get_method(name)  # an unknown name fails here, listing the registered ones
        self._method = name
        self._plans.clear()

    @property
    def plans(self):
        """The cached plans, least recently used first (``plan.method`` is the forward's resolved method,
        ``plan.backward_methods`` those of ``dx`` and ``dw``: with ``method="auto"`` each pass has its own)."""
        return tuple(self._plans.values())

    def plan_for(self, x_shape, dtype):
        """The (cached) plan this layer runs on inputs of ``x_shape`` and ``dtype``."""
        dtype = compute_dtype(dtype, self.weight.value.dtype)
        key = (tuple(x_shape), dtype.str)
        p = self._plans.get(key)
        if p is None:
            p = plan(x_shape, self.weight.shape, dtype, stride=self.stride, padding=self.padding,
                     dilation=self.dilation, groups=self.groups, padding_mode=self.padding_mode,
                     method=self.method)
            self._plans[key] = p
            if len(self._plans) > _PLANS_PER_LAYER:
                self._plans.popitem(last=False)
        else:
            self._plans.move_to_end(key)
        return p

    def forward(self, x):
        """``y = conv(x, weight) + bias``; x of shape ``(N, in_channels, *spatial)``."""
        x = np.asarray(x)
        if x.ndim != self.ndim + 2:
            raise ConvError(f"{type(self).__name__} expects x of shape (N, C_in, *spatial) with {self.ndim} "
                            f"spatial dim(s), but got shape {x.shape}")
        p = self.plan_for(x.shape, x.dtype)
        y = p.forward(x, self.weight.value, None if self.bias is None else self.bias.value)
        self._save(p, x)
        return y

    def backward(self, grad_y):
        """``dx`` for the last forward; stores ``weight.grad`` (dw) and ``bias.grad`` (db)."""
        p, x = self._saved_for_backward()
        grad_y = check_grad_shape(self, grad_y, p.output_shape)
        grads = p.backward(grad_y, x, self.weight.value)
        self.weight.set_grad(grads.dw)
        if self.bias is not None:
            self.bias.set_grad(grads.db)
        return grads.dx

    @property
    def dw(self):
        """Gradient of the weight from the last backward."""
        return self.weight.grad

    @property
    def db(self):
        """Gradient of the bias from the last backward (``None`` without bias)."""
        return None if self.bias is None else self.bias.grad

    def extra_repr(self):
        text = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        for name, default in (("padding", 0), ("dilation", 1), ("groups", 1), ("padding_mode", "zeros")):
            if getattr(self, name) != default:
                text += f", {name}={getattr(self, name)!r}"
        if self.bias is None:
            text += ", bias=False"
        return text + f", method={self.method!r}"


class Conv1d(_ConvNd):
    """1-D convolution layer with ``torch.nn.Conv1d``'s arguments, plus ``method=``.

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size, stride, padding, dilation : int or tuple
        As :func:`convlab.conv`; ``padding`` also takes ``"valid"``, ``"same"`` or ``"full"``.
    groups : int, default 1
    bias : bool, default True
    padding_mode : {"zeros", "reflect", "replicate", "circular", "symmetric"}
    method : str, default "auto"
        Any name from :func:`convlab.methods`, or ``"auto"``.
    dtype : dtype, default float32
        Dtype of the parameters.
    rng : None, int or numpy.random.Generator
        Source of PyTorch's default initialisation.

    Examples
    --------
    >>> import numpy as np
    >>> layer = Conv1d(2, 4, 3, padding="same", rng=0)
    >>> y = layer(np.ones((5, 2, 16), np.float32))
    >>> dx = layer.backward(np.ones_like(y))
    >>> y.shape, dx.shape, layer.dw.shape, layer.db.shape
    ((5, 4, 16), (5, 2, 16), (4, 2, 3), (4,))
    """

    ndim = 1


class Conv2d(_ConvNd):
    """2-D convolution layer with ``torch.nn.Conv2d``'s arguments, plus ``method=``.

    Parameters are those of :class:`Conv1d`, with 2-tuples.

    Examples
    --------
    >>> import numpy as np
    >>> layer = Conv2d(1, 8, 3, padding=1, method="direct", rng=0)
    >>> y = layer(np.ones((2, 1, 8, 8), np.float32))
    >>> dx = layer.backward(np.ones_like(y))
    >>> y.shape, dx.shape, layer.weight.grad.shape
    ((2, 8, 8, 8), (2, 1, 8, 8), (8, 1, 3, 3))
    """

    ndim = 2


class Conv3d(_ConvNd):
    """3-D convolution layer with ``torch.nn.Conv3d``'s arguments, plus ``method=``.

    Parameters are those of :class:`Conv1d`, with 3-tuples.

    Examples
    --------
    >>> import numpy as np
    >>> layer = Conv3d(1, 2, 3, stride=2, rng=0)
    >>> layer(np.ones((1, 1, 7, 7, 7), np.float32)).shape
    (1, 2, 3, 3, 3)
    """

    ndim = 3
