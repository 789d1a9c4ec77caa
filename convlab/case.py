"""The problem record every measuring application shares: the report, ``convlab compare``, benchmarks."""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from .planning import ConvPlan, plan

__all__ = ["Case"]


@dataclasses.dataclass(frozen=True)
class Case:
    """One convolution problem to measure: shapes, dtype and the parameters of :func:`convlab.plan`.

    Attributes
    ----------
    x_shape, w_shape : tuple of int
        ``(N, C_in, *spatial)`` and ``(C_out, C_in // groups, *kernel)``.
    dtype : {"float32", "float64"}, default "float32"
        The dtype timed.
    stride, padding, dilation, groups, padding_mode
        As accepted by :func:`convlab.plan` (lists become tuples).
    name : str
        A label for tables; not part of the problem.

    Examples
    --------
    >>> case = Case((2, 3, 16, 16), (4, 3, 3, 5), padding="same")
    >>> case.plan("direct").output_shape
    (2, 4, 16, 16)
    >>> x, w, grad_y = case.arrays()
    >>> x.shape, w.shape, grad_y.shape, x.dtype
    ((2, 3, 16, 16), (4, 3, 3, 5), (2, 4, 16, 16), dtype('float32'))
    """

    x_shape: tuple
    w_shape: tuple
    dtype: str = "float32"
    stride: object = 1
    padding: object = 0
    dilation: object = 1
    groups: int = 1
    padding_mode: str = "zeros"
    name: str = ""

    def __post_init__(self):
        # TOML and JSON give lists; a frozen record must hash, so nested lists become tuples.
        for key in ("x_shape", "w_shape", "stride", "padding", "dilation"):
            object.__setattr__(self, key, _tuples(getattr(self, key)))

    def plan_kwargs(self) -> dict:
        """Keyword arguments of :func:`convlab.plan` besides the shapes and dtype."""
        return dict(stride=self.stride, padding=self.padding, dilation=self.dilation, groups=self.groups,
                    padding_mode=self.padding_mode)

    def plan(self, method: str = "auto", dtype=None, **kwargs) -> ConvPlan:
        """:func:`convlab.plan` of this problem (in ``dtype``, default the case's) with ``method``.

        Raises what :func:`convlab.plan` raises: ``plan("direct")`` is how a
        case is validated.
        """
        return plan(self.x_shape, self.w_shape, self.dtype if dtype is None else dtype, method=method,
                    **self.plan_kwargs(), **kwargs)

    def arrays(self, seed: int = 0, dtype=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Seeded ``(x, w, grad_y)`` in ``dtype`` (default the case's).

        Drawn in float32 and then cast, so every dtype sees the same values
        (a float64 reference is exact for them); ``w`` is scaled by
        ``1/sqrt(fan_in)`` so outputs stay of order one.
        """
        rng = np.random.default_rng(seed)
        out_shape = self.plan("direct", np.float64).output_shape
        fan_in = int(np.prod(self.w_shape[1:]))
        x = rng.standard_normal(self.x_shape, np.float32)
        w = rng.standard_normal(self.w_shape, np.float32) / np.float32(math.sqrt(max(fan_in, 1)))
        grad_y = rng.standard_normal(out_shape, np.float32)
        dtype = np.dtype(self.dtype if dtype is None else dtype)
        return x.astype(dtype), w.astype(dtype), grad_y.astype(dtype)


def _tuples(value):
    if isinstance(value, (list, tuple)):
        return tuple(_tuples(v) for v in value)
    return value

