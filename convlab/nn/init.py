"""PyTorch's default initialisation of ``Linear`` and ``ConvNd``, drawn from numpy.

PyTorch initialises the weight with ``kaiming_uniform_(w, a=sqrt(5))``: a
uniform distribution on ``[-bound, bound]`` with
``bound = gain * sqrt(3 / fan_in)`` and ``gain = sqrt(2 / (1 + a**2))``;
with ``a = sqrt(5)`` that is ``bound = 1 / sqrt(fan_in)``. The bias is
uniform on ``[-1/sqrt(fan_in), 1/sqrt(fan_in)]``. ``fan_in`` is the number
of inputs one output sees: ``in_features`` for ``Linear``,
``in_channels / groups * prod(kernel_size)`` for a convolution.

The numbers come from a :class:`numpy.random.Generator`, so the same seed
gives the same network (not the same numbers as ``torch.manual_seed``).
"""

import math

import numpy as np

__all__ = ["as_generator", "kaiming_uniform", "bias_uniform"]


def as_generator(rng):
    """A :class:`numpy.random.Generator` from ``None``, an int seed or a Generator.

    Examples
    --------
    >>> int(as_generator(0).integers(10)) == int(as_generator(0).integers(10))
    True
    """
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or (isinstance(rng, (int, np.integer)) and not isinstance(rng, bool)):
        return np.random.default_rng(rng)
    raise TypeError(f"rng must be None, an int seed or a numpy.random.Generator, but got {rng!r}")


_SQRT5 = math.sqrt(5)  # PyTorch's default slope for conv and linear layers


def kaiming_uniform(rng, shape, fan_in, dtype, a=_SQRT5):
    """``U(-b, b)`` with ``b = sqrt(2 / (1 + a**2)) * sqrt(3 / fan_in)``, as ``torch.nn.init.kaiming_uniform_``.

    Examples
    --------
    >>> w = kaiming_uniform(np.random.default_rng(0), (64, 9), 9, np.float32)
    >>> bool(np.abs(w).max() <= 1 / 3), w.dtype
    (True, dtype('float32'))
    """
    gain = math.sqrt(2.0 / (1.0 + a * a))
    bound = gain * math.sqrt(3.0 / fan_in)
    return rng.uniform(-bound, bound, size=shape).astype(dtype)


def bias_uniform(rng, size, fan_in, dtype):
    """``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``: PyTorch's default bias."""
    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    return rng.uniform(-bound, bound, size=size).astype(dtype)
