"""The functional interface: thin wrappers that build (cached) plans and run them."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from .algorithms import methods
from .config import get_autotune, get_workspace_limit
from .errors import ConvError
from .planning import ConvGrads, ConvPlan, plan
from .problem import as_array, check_array, compute_dtype, transpose_spec, unbatched

__all__ = ["conv", "conv1d", "conv2d", "conv3d", "conv_backward", "convolve", "conv_transpose", "cached_plan",
           "clear_plan_cache"]

_PLAN_CACHE_SIZE = 256

IntOrTuple = int | Sequence[int]
#: an int, one int or (lo, hi) pair per spatial dim, or "valid" / "same" / "full"
Padding = int | str | Sequence[int | Sequence[int]]


def _freeze(value):
    """Lists (possibly nested) -> tuples, so parameters can key a cache."""
    if type(value) in (int, str):  # the usual spellings: nothing to convert (every functional call asks)
        return value
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, np.integer):
        return int(value)
    return value


@functools.lru_cache(maxsize=_PLAN_CACHE_SIZE)
def _cached_plan(x_shape, w_shape, dtype, stride, padding, dilation, groups, padding_mode, method,
                 autotune, global_limit, registered, typed_key):
    return plan(x_shape, w_shape, dtype, stride=stride, padding=padding, dilation=dilation,
                groups=groups, padding_mode=padding_mode, method=method, autotune=autotune)


# The plans of the latest calls, keyed by the arguments exactly as given (when hashable) and the global settings
# a plan depends on: a repeated call finds its plan in one dictionary look-up, without normalising its arguments
# for the LRU key (a few microseconds of a small convolution). Cleared with the LRU cache, and when full.
_recent: dict = {}


def _typed(value):
    """``value`` with the type of every element: ``stride=True`` or ``1.0`` must not find the plan of ``stride=1``
    (they are equal and hash alike, but the validation layer refuses them)."""
    if isinstance(value, tuple):
        return tuple(_typed(v) for v in value)
    return type(value), value


def cached_plan(x_shape, w_shape, dtype, **params) -> ConvPlan:
    """:func:`convlab.plan` through a thread-safe LRU cache keyed by its arguments.

    Repeated functional calls with the same shapes and parameters reuse one
    plan (and everything the method precomputed in it).
    """
    key = (x_shape, w_shape, dtype, *((name, _typed(value)) for name, value in params.items()), get_autotune(),
           get_workspace_limit(), methods())
    try:
        return _recent[key]
    except KeyError:
        hashable = True
    except TypeError:  # unhashable arguments (lists): the normalised route only
        hashable = False
    p = _normalised_cached_plan(x_shape, w_shape, dtype, **params)
    if hashable:
        if len(_recent) >= _PLAN_CACHE_SIZE:
            _recent.clear()
        _recent[key] = p
    return p


def _normalised_cached_plan(x_shape, w_shape, dtype, **params) -> ConvPlan:
    keys = ("stride", "padding", "dilation", "groups", "padding_mode", "method", "autotune")
    defaults = dict(stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros", method="auto",
                    autotune=None)
    values = [_freeze(params.get(k, defaults[k])) for k in keys]
    if values[-2] == "auto" and values[-1] is None:
        values[-1] = get_autotune()  # the global switch is part of the key
    try:
        return _cached_plan(tuple(x_shape), tuple(w_shape), np.dtype(dtype), *values,
                            get_workspace_limit(), methods(), _typed(tuple(values)))
    except TypeError as exc:
        if "unhashable" not in str(exc):
            raise
        return plan(x_shape, w_shape, dtype, **params)  # let validation name the bad parameter


def clear_plan_cache() -> None:
    """Forget the plans functional calls keep, so the next call plans (and, for ``method="auto"``, chooses) anew."""
    _cached_plan.cache_clear()
    _recent.clear()


def _inputs(x, w, bias=None, *, expected_ndim=None, name="conv"):
    x, w = as_array("x", x), as_array("w", w)
    if expected_ndim is not None and x.ndim != expected_ndim + 2 and not (
            x.ndim == expected_ndim + 1 and unbatched(x.ndim, w.ndim)):
        raise ConvError(
            f"{name} expects x of shape (N, C_in, *spatial) with {expected_ndim} spatial dim(s), i.e. "
            f"{expected_ndim + 2} dimensions (or {expected_ndim + 1} unbatched), but got shape {x.shape}"
        )
    arrays = [x, w] + ([as_array("bias", bias)] if bias is not None else [])
    return x, w, bias, compute_dtype(*(a.dtype for a in arrays))


def conv(x: ArrayLike, w: ArrayLike, bias: ArrayLike | None = None, *, stride: IntOrTuple = 1,
         padding: Padding = 0, dilation: IntOrTuple = 1, groups: int = 1, padding_mode: str = "zeros",
         method: str = "auto", autotune: bool | None = None) -> np.ndarray:
    """N-dimensional cross-correlation with PyTorch's ``conv{1,2,3}d`` semantics.

    ``y[n, o, i] = bias[o] + sum_{c, j} w[o, c, j] * xp[n, g*C_in/G + c, s*i + d*j]``
    where ``xp`` is ``x`` padded, ``g`` the group of output channel ``o``.

    Parameters
    ----------
    x : array_like, shape (N, C_in, *spatial) or (C_in, *spatial)
        1, 2 or 3 spatial dims; unbatched (``x.ndim == w.ndim - 1``) as PyTorch,
        giving an unbatched result. N and C_in may be 0 (an empty sum: zeros plus bias).
        Bool, integer, float or complex.
    w : array_like, shape (C_out, C_in // groups, *kernel)
    bias : array_like, shape (C_out,), optional
    stride : int or tuple of int, default 1
    padding : int, tuple of int, tuple of (int, int), or {"valid", "same", "full"}, default 0
        ``"same"`` (stride 1 only) puts an odd extra pad at the end, as PyTorch;
        ``"full"`` keeps every overlap, as ``scipy.signal.correlate(mode="full")``.
    dilation : int or tuple of int, default 1
    groups : int, default 1
    padding_mode : {"zeros", "reflect", "replicate", "circular", "symmetric"}, default "zeros"
    method : str, default "auto"
        One of :func:`convlab.methods` or ``"auto"``.
    autotune : bool, optional
        With ``method="auto"``, time the candidates once per problem and keep
        the fastest (see :mod:`convlab.tuning.autotune`); default
        :func:`convlab.get_autotune`, else the cost model chooses.

    Returns
    -------
    y : ndarray, shape (N, C_out, *output_size)
        float32 for float32 inputs, float64 for float64; complex64/complex128
        when an input is complex; for integer or bool inputs float64 holding
        the exact integer result from every method (``ConvError`` when a bound
        on it reaches 2**53, the end of float64's exact integers). See
        :mod:`convlab.problem` for the output-size table.

    Examples
    --------
    >>> import numpy as np, convlab as cl
    >>> x = np.arange(5.0).reshape(1, 1, 5)
    >>> cl.conv(x, np.array([[[1.0, 0.0, -1.0]]]), method="direct")
    array([[[-2., -2., -2.]]])
    >>> cl.conv(np.ones((2, 4, 8, 8)), np.ones((6, 2, 3, 3)), groups=2, padding=1).shape
    (2, 6, 8, 8)
    >>> cl.conv(np.array([[1, 2, 3]]), np.array([[[1j, 1]]]), method="fft")  # unbatched, complex
    array([[2.+1.j, 3.+2.j]])
    """
    x, w, bias, dtype = _inputs(x, w, bias)
    if unbatched(x.ndim, w.ndim):
        return conv(x[None], w, bias, stride=stride, padding=padding, dilation=dilation, groups=groups,
                    padding_mode=padding_mode, method=method, autotune=autotune)[0]
    p = cached_plan(x.shape, w.shape, dtype, stride=stride, padding=padding, dilation=dilation,
                    groups=groups, padding_mode=padding_mode, method=method, autotune=autotune)
    return p.forward(x, w, bias)


def _fixed_dims(ndim):
    def wrapper(x, w, bias=None, *, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros",
                method="auto"):
        x, w, bias, _ = _inputs(x, w, bias, expected_ndim=ndim, name=f"conv{ndim}d")
        return conv(x, w, bias, stride=stride, padding=padding, dilation=dilation, groups=groups,
                    padding_mode=padding_mode, method=method)

    layout = {1: "(N, C_in, L)", 2: "(N, C_in, H, W)", 3: "(N, C_in, D, H, W)"}[ndim]
    wrapper.__name__ = wrapper.__qualname__ = f"conv{ndim}d"
    wrapper.__doc__ = f"""{ndim}-D cross-correlation: :func:`conv` that requires ``x`` of shape {layout}.

    Parameters and returns are those of :func:`conv`; a mismatched number of
    dimensions raises ``ConvError``.

    Examples
    --------
    >>> import numpy as np, convlab as cl
    >>> x = np.ones((1, 1) + (6,) * {ndim}); w = np.ones((1, 1) + (3,) * {ndim})
    >>> cl.conv{ndim}d(x, w).shape
    {(1, 1) + (4,) * ndim}
    """
    return wrapper


conv1d, conv2d, conv3d = _fixed_dims(1), _fixed_dims(2), _fixed_dims(3)


def conv_backward(grad_y: ArrayLike, x: ArrayLike, w: ArrayLike, *, stride: IntOrTuple = 1, padding: Padding = 0,
                  dilation: IntOrTuple = 1, groups: int = 1, padding_mode: str = "zeros", method: str = "auto",
                  autotune: bool | None = None) -> ConvGrads:
    """Gradients of ``sum(grad_y * conv(x, w, b))`` with respect to ``x``, ``w`` and ``b``.

    Parameters
    ----------
    grad_y : array_like, shape (N, C_out, *output_size)
    x : array_like, shape (N, C_in, *spatial)
    w : array_like, shape (C_out, C_in // groups, *kernel)
    stride, padding, dilation, groups, padding_mode, method, autotune
        As in :func:`conv`.

    Returns
    -------
    ConvGrads
        Named tuple ``(dx, dw, db)`` of shapes ``x.shape``, ``w.shape`` and ``(C_out,)``.
        For a padding mode other than zeros, ``dx`` folds the gradient of the
        padded border back exactly (the adjoint of the padding).

    Examples
    --------
    >>> import numpy as np, convlab as cl
    >>> x = np.arange(5.0).reshape(1, 1, 5); w = np.array([[[1.0, 2.0]]])
    >>> g = cl.conv_backward(np.ones((1, 1, 4)), x, w, method="direct")
    >>> g.dx, g.dw, g.db
    (array([[[1., 3., 3., 3., 2.]]]), array([[[ 6., 10.]]]), array([4.]))
    """
    grad_y = as_array("grad_y", grad_y)
    x, w, _, dtype = _inputs(x, w)
    if unbatched(x.ndim, w.ndim):
        dx, dw, db = conv_backward(grad_y[None], x[None], w, stride=stride, padding=padding, dilation=dilation,
                                   groups=groups, padding_mode=padding_mode, method=method, autotune=autotune)
        return ConvGrads(dx[0], dw, db)
    p = cached_plan(x.shape, w.shape, compute_dtype(dtype, grad_y.dtype), stride=stride, padding=padding,
                    dilation=dilation, groups=groups, padding_mode=padding_mode, method=method,
                    autotune=autotune)
    return p.backward(grad_y, x, w)


def convolve(x: ArrayLike, w: ArrayLike, bias: ArrayLike | None = None, *, stride: IntOrTuple = 1,
             padding: Padding = 0, dilation: IntOrTuple = 1, groups: int = 1, padding_mode: str = "zeros",
             method: str = "auto") -> np.ndarray:
    """True convolution: :func:`conv` with the kernel flipped along every spatial axis.

    With ``padding="full"`` and one channel this is ``scipy.signal.convolve(mode="full")``;
    with ``"valid"`` it is ``mode="valid"``.

    Examples
    --------
    >>> import numpy as np, convlab as cl
    >>> cl.convolve(np.array([[[1.0, 2.0, 3.0]]]), np.array([[[0.0, 1.0, 0.5]]]), padding="full",
    ...             method="direct")
    array([[[0. , 1. , 2.5, 4. , 1.5]]])
    """
    x, w, bias, _ = _inputs(x, w, bias)
    flipped = w[(Ellipsis, *(slice(None, None, -1),) * (w.ndim - 2))]
    return conv(x, flipped, bias, stride=stride, padding=padding, dilation=dilation, groups=groups,
                padding_mode=padding_mode, method=method)


def conv_transpose(x: ArrayLike, w: ArrayLike, bias: ArrayLike | None = None, *, stride: IntOrTuple = 1,
                   padding: IntOrTuple = 0, output_padding: IntOrTuple = 0, dilation: IntOrTuple = 1,
                   groups: int = 1, method: str = "auto", output_size: Sequence[int] | None = None) -> np.ndarray:
    """Transposed convolution with PyTorch's ``conv_transpose{1,2,3}d`` semantics.

    It is the gradient of :func:`conv` with respect to its input: the map
    ``dy -> dx`` of a convolution with the same ``w``, stride, padding and
    dilation.

    Parameters
    ----------
    x : array_like, shape (N, C_in, *spatial)
    w : array_like, shape (C_in, C_out // groups, *kernel)
    bias : array_like, shape (C_out,), optional
    stride, dilation : int or tuple of int
    padding : int or tuple of int
        Removed from both sides of the output.
    output_padding : int or tuple of int
        Extra size added to one side of the output; must be smaller than
        stride or dilation in each dim.
    groups : int
    method : str
    output_size : tuple of int, optional
        The spatial output size (optionally preceded by ``N, C_out``), as
        PyTorch's ``output_size``: it resolves the ambiguity of a stride > 1 by
        choosing ``output_padding``. Each size must lie in ``[out_0, out_0 + stride - 1]``
        with ``out_0`` the size for ``output_padding=0``; then ``output_padding``
        must be left at 0.

    Returns
    -------
    y : ndarray, shape (N, C_out, *out)
        ``out = (n - 1) * stride - 2 * padding + dilation * (k - 1) + output_padding + 1``.

    Examples
    --------
    >>> import numpy as np, convlab as cl
    >>> cl.conv_transpose(np.ones((1, 1, 3)), np.ones((1, 1, 2)), stride=2, method="direct")
    array([[[1., 1., 1., 1., 1., 1.]]])
    >>> cl.conv_transpose(np.ones((1, 1, 3)), np.ones((1, 1, 2)), stride=2, output_size=(7,), method="direct")
    array([[[1., 1., 1., 1., 1., 1., 0.]]])
    """
    x, w, bias, dtype = _inputs(x, w, bias)
    if unbatched(x.ndim, w.ndim):
        size = None if output_size is None else tuple(output_size)[-(w.ndim - 2):]
        return conv_transpose(x[None], w, bias, stride=stride, padding=padding, output_padding=output_padding,
                              dilation=dilation, groups=groups, method=method, output_size=size)[0]
    forward = transpose_spec(x.shape, w.shape, dtype, stride=stride, padding=padding,
                             output_padding=output_padding, dilation=dilation, groups=groups,
                             output_size=output_size)
    p = cached_plan(forward.x_shape, w.shape, dtype, stride=forward.stride, padding=forward.padding,
                    dilation=forward.dilation, groups=forward.groups, method=method)
    # With output_padding >= stride (allowed when smaller than dilation) the forward
    # convolution has more outputs than x has positions: those receive zero gradient.
    tail = [(0, f - n) for f, n in zip(p.output_size, x.shape[2:])]
    # the plan's backward_input is the complex gradient (conj(w)); the transposed convolution is bilinear
    w = np.conj(w) if np.iscomplexobj(w) else w
    y = p.backward_input(np.pad(x, [(0, 0), (0, 0), *tail]) if any(t for _, t in tail) else x, w)
    if bias is not None:
        y += check_array("bias", bias, (forward.in_channels,), y.dtype).reshape((-1,) + (1,) * forward.ndim)
    return y


__all__ += ["ConvGrads"]
