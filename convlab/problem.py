"""The problem spec: every parameter of a convolution normalised and validated once.

This module is the only place where user input is checked. :func:`spec`
turns every accepted spelling of a parameter into one canonical form
(``stride`` and ``dilation`` as one int per spatial dim, ``padding`` as one
``(lo, hi)`` pair per spatial dim), checks every constraint, and returns a
frozen, method-free :class:`ConvSpec`. Methods receive a spec and trust it;
the plan (:mod:`convlab.planning`) is a spec plus the method chosen for it.

Output size per spatial dim, with ``n`` the input size, ``k`` the kernel
size, ``d`` the dilation, ``s`` the stride and ``(lo, hi)`` the padding:

==================  ==========================  ==============================
``padding``         ``(lo, hi)``                output size
==================  ==========================  ==============================
``p`` (int)         ``(p, p)``                  ``(n + 2p - d(k-1) - 1)//s + 1``
``(lo, hi)``        as given                    ``(n + lo + hi - d(k-1) - 1)//s + 1``
``"valid"``         ``(0, 0)``                  ``(n - d(k-1) - 1)//s + 1``
``"same"`` (s = 1)  ``(t//2, t - t//2)``,       ``n``
                    ``t = d(k-1)``
``"full"``          ``(d(k-1), d(k-1))``        ``(n + d(k-1) - 1)//s + 1``
==================  ==========================  ==============================
"""

from __future__ import annotations

import dataclasses
import functools
import math
import threading
from collections.abc import Callable, Hashable
from typing import Any

import numpy as np

from . import padding as _padding
from .checks import check_bool, check_choice, check_int, is_int
from .config import check_limit, get_workspace_limit
from .errors import ConvError, ConvTypeError

__all__ = ["ConvSpec", "spec", "transpose_spec", "as_spec", "compute_dtype", "as_array", "check_array",
           "is_integral", "unbatched", "PADDING_STRINGS", "SPATIAL_DIMS"]

PADDING_STRINGS = frozenset({"valid", "same", "full"})
SPATIAL_DIMS = (1, 2, 3)


# --------------------------------------------------------------- arrays and dtypes
def as_array(name: str, value: Any) -> np.ndarray:
    """``value`` as a numeric ndarray: bool, integer, float or complex (never copied when already one).

    Examples
    --------
    >>> as_array("x", [[1, 2], [3]])
    Traceback (most recent call last):
    ...
    convlab.errors.ConvError: x must be a rectangular array, but got a ragged nested sequence
    """
    if value is None:
        raise ConvTypeError(f"{name} must be an array, but got None")
    # a torch tensor that is part of an autograd graph: numpy would raise a RuntimeError naming nothing
    if not isinstance(value, np.ndarray) and getattr(value, "requires_grad", False):
        raise ConvTypeError(f"{name} is a tensor that requires grad; pass {name}.detach() "
                                f"(or use convlab.torch for autograd)")
    try:
        array = np.asarray(value)
    except ValueError:
        raise ConvError(f"{name} must be a rectangular array, but got a ragged nested sequence") from None
    if array.dtype.kind not in "biufc":
        raise ConvTypeError(
            f"{name} must be a numeric array (bool, int, float or complex), but got dtype {array.dtype}"
        )
    return array


def compute_dtype(*dtypes: Any) -> np.dtype:
    """The dtype a convolution of these dtypes returns (and, for real dtypes, computes in).

    Floats promote as numpy does (float16 computes in float32); integer and
    bool inputs give float64 (integer-valued and exact: see :meth:`ConvPlan.forward
    <convlab.ConvPlan.forward>`); a complex input gives complex64 or complex128,
    computed as real convolutions of the real and imaginary parts.

    Examples
    --------
    >>> compute_dtype(np.float32, np.float32)
    dtype('float32')
    >>> compute_dtype(np.float32, np.float64), compute_dtype(np.int64)
    (dtype('float64'), dtype('float64'))
    >>> compute_dtype(np.complex64, np.float32), compute_dtype(np.complex64, np.float64)
    (dtype('complex64'), dtype('complex128'))
    >>> compute_dtype(np.float16, np.int8)
    dtype('float32')
    >>> compute_dtype(np.longdouble)
    Traceback (most recent call last):
    ...
    convlab.errors.ConvTypeError: dtype float128 is not supported; use float32, float64, complex64 or complex128
    """
    try:
        result = np.result_type(*dtypes)
    except TypeError as exc:
        raise ConvTypeError(f"dtype must be a numeric dtype, but got {dtypes!r}: {exc}") from None
    if result.kind in "biu":
        return np.dtype(np.float64)
    if result.kind not in "fc":
        raise ConvTypeError(f"dtype must be a numeric dtype (float32, float64, complex64 or complex128), "
                            f"but got {result}")
    real_size = result.itemsize // 2 if result.kind == "c" else result.itemsize
    if real_size > 8:
        raise ConvTypeError(f"dtype {result} is not supported; use float32, float64, complex64 or complex128")
    if result.kind == "c":
        return np.dtype(np.complex64) if real_size <= 4 else np.dtype(np.complex128)
    return np.dtype(np.float32) if real_size <= 4 else np.dtype(np.float64)


def is_integral(*arrays: np.ndarray) -> bool:
    """True when every array is bool or integer: the convolution must then be the exact integer result."""
    return all(a.dtype.kind in "biu" for a in arrays)


def unbatched(x_ndim: int, w_ndim: int) -> bool:
    """True when ``x`` is an unbatched ``(C_in, *spatial)`` input for a weight of ``w_ndim`` dims.

    PyTorch's rule: ``x.ndim == w.ndim - 1`` with 1 to 3 spatial dims. The
    functional API then runs ``x[None]`` and returns the result without its batch axis.

    Examples
    --------
    >>> unbatched(3, 4), unbatched(4, 4), unbatched(1, 2)
    (True, False, False)
    """
    return x_ndim == w_ndim - 1 and w_ndim - 2 in SPATIAL_DIMS


def check_array(name: str, value: Any, shape: tuple, dtype: np.dtype) -> np.ndarray:
    """``value`` as an array of exactly ``shape``, converted to ``dtype`` (a view when it already is).

    A complex array for a real ``dtype`` is refused: dropping its imaginary part would be a silent wrong answer.
    """
    array = as_array(name, value)
    if array.shape != tuple(shape):
        hint = ""
        if len(array.shape) == len(shape) - 1 and array.shape == tuple(shape[1:]):
            hint = f" (an unbatched input: pass {name}[None] to a plan; the functional API accepts it as is)"
        raise ConvError(f"{name} must have shape {tuple(shape)} for this plan, but got {array.shape}{hint}")
    if array.dtype.kind == "c" and np.dtype(dtype).kind != "c":
        raise ConvTypeError(f"{name} is complex ({array.dtype}) but this plan is real ({np.dtype(dtype)}); "
                            f"plan with a complex dtype (complex64 or complex128)")
    return array.astype(dtype, copy=False)


# --------------------------------------------------------------- parameter normalisation
def per_dim(name: str, value: Any, ndim: int, minimum: int) -> tuple[int, ...]:
    """An int or one int per spatial dim -> a tuple of ``ndim`` ints >= ``minimum``."""
    if is_int(value):
        values = (int(value),) * ndim
    elif isinstance(value, (tuple, list)) and all(is_int(v) for v in value):
        if len(value) != ndim:
            raise ConvError(f"{name}={value!r} must have one entry per spatial dim ({ndim}), but has {len(value)}")
        values = tuple(int(v) for v in value)
    else:
        raise ConvTypeError(f"{name} must be an int or a tuple of {ndim} ints, but got {value!r}")
    if any(v < minimum for v in values):
        raise ConvError(f"{name}={value!r} must be >= {minimum} in every spatial dim")
    return values


def padding_pairs(padding: Any, ndim: int, kernel_size: tuple, dilation: tuple,
                  stride: tuple) -> tuple[tuple[int, int], ...]:
    """Any accepted spelling of ``padding`` -> one ``(lo, hi)`` pair per spatial dim."""
    if isinstance(padding, str):
        if padding not in PADDING_STRINGS:
            raise ConvError(f"padding must be an int, a tuple or one of {sorted(PADDING_STRINGS)}, but got {padding!r}")
        extents = [d * (k - 1) for k, d in zip(kernel_size, dilation)]
        if padding == "valid":
            return ((0, 0),) * ndim
        if padding == "full":
            return tuple((e, e) for e in extents)
        if any(s != 1 for s in stride):
            raise ConvError(f"padding='same' requires stride=1 in every dim, but got stride={stride}")
        return tuple((e // 2, e - e // 2) for e in extents)
    if is_int(padding):
        pairs = ((int(padding), int(padding)),) * ndim
    elif isinstance(padding, (tuple, list)) and len(padding) == ndim:
        pairs = []
        for entry in padding:
            if is_int(entry):
                pairs.append((int(entry), int(entry)))
            elif isinstance(entry, (tuple, list)) and len(entry) == 2 and all(is_int(v) for v in entry):
                pairs.append((int(entry[0]), int(entry[1])))
            else:
                raise ConvTypeError(
                    f"padding={padding!r}: each entry must be an int or a (before, after) pair of ints, "
                    f"but got {entry!r}"
                )
        pairs = tuple(pairs)
    elif isinstance(padding, (tuple, list)):
        raise ConvError(f"padding={padding!r} must have one entry per spatial dim ({ndim}), but has {len(padding)}")
    else:
        raise ConvTypeError(
            f"padding must be an int, a tuple of ints or (before, after) pairs, or one of "
            f"{sorted(PADDING_STRINGS)}, but got {padding!r}"
        )
    if any(v < 0 for pair in pairs for v in pair):
        raise ConvError(f"padding={padding!r} must be non-negative")
    return pairs


def _shape(name: str, shape: Any) -> tuple[int, ...]:
    if not isinstance(shape, (tuple, list)) or not all(is_int(v) for v in shape):
        raise ConvTypeError(f"{name} must be a tuple of ints, but got {shape!r}")
    return tuple(int(v) for v in shape)


def check_shapes(x_shape: tuple, w_shape: tuple, groups: Any) -> int:
    """Check that ``x`` and ``w`` shapes fit together under ``groups``; return ``groups`` as an int."""
    if len(x_shape) - 2 not in SPATIAL_DIMS or len(w_shape) == len(x_shape) + 1:
        hint = (f"; x looks unbatched (C_in, *spatial): the functional API accepts that, a plan or spec "
                f"takes (1, *x_shape) = {(1, *x_shape)}" if unbatched(len(x_shape), len(w_shape)) else "")
        raise ConvError(
            f"x must have 3, 4 or 5 dimensions (N, C_in, *spatial) for 1-, 2- or 3-D convolution, "
            f"but got shape {x_shape}{hint}"
        )
    if len(w_shape) != len(x_shape):
        raise ConvError(
            f"w must have {len(x_shape)} dimensions (C_out, C_in/groups, *kernel) to match x of shape "
            f"{x_shape}, but got shape {w_shape}"
        )
    # Empty batches and channel counts are legal (an empty sum is 0, as PyTorch); an empty spatial
    # extent or kernel is not (PyTorch refuses both: no output size follows from it).
    if any(v < 0 for v in (*x_shape, *w_shape)):
        raise ConvError(f"x shape {x_shape} and w shape {w_shape} must have non-negative sizes")
    if any(v < 1 for v in x_shape[2:]):
        raise ConvError(f"x shape {x_shape} must have every spatial size >= 1 (N and C_in may be 0)")
    if any(v < 1 for v in w_shape[2:]):
        raise ConvError(f"w shape {w_shape} must have every kernel size >= 1 (C_out and C_in/groups may be 0)")
    groups = check_int("groups", groups, minimum=1)
    c_in, c_out = x_shape[1], w_shape[0]
    if c_in % groups:
        raise ConvError(f"groups={groups} must divide C_in={c_in}")
    if c_out % groups:
        raise ConvError(f"groups={groups} must divide C_out={c_out} (w.shape[0])")
    if w_shape[1] * groups != c_in:
        raise ConvError(
            f"w.shape[1]={w_shape[1]} must equal C_in/groups={c_in}/{groups}={c_in // groups} "
            f"(x has shape {x_shape}, w has shape {w_shape})"
        )
    return groups


def _check_padding_mode(padding_mode: Any, pairs: tuple, input_size: tuple) -> str:
    check_choice("padding_mode", padding_mode, _padding.PADDING_MODES)
    for dim, ((lo, hi), n) in enumerate(zip(pairs, input_size)):
        if padding_mode == "reflect" and max(lo, hi) >= n:
            raise ConvError(
                f"padding={(lo, hi)} in spatial dim {dim} must be smaller than the input size {n} "
                f"for padding_mode='reflect'"
            )
        if padding_mode in ("circular", "symmetric") and max(lo, hi) > n:
            raise ConvError(
                f"padding={(lo, hi)} in spatial dim {dim} must be at most the input size {n} "
                f"for padding_mode={padding_mode!r}"
            )
    return padding_mode


# --------------------------------------------------------------- the spec
def _derived(fn: Callable[[Any], Any]) -> property:
    """A read-only property computed once per spec: every call of a plan reads the geometry many times,
    and a spec never changes (frozen), so each value is kept in the instance's ``__dict__``
    (the property, a data descriptor, still answers every read: the entry never shadows it)."""
    name = fn.__name__

    def get(self: Any) -> Any:
        try:
            return self.__dict__[name]
        except KeyError:  # two threads may both compute it: the same value, stored atomically
            value = self.__dict__[name] = fn(self)
            return value

    return property(functools.wraps(fn)(get))


@dataclasses.dataclass(frozen=True, eq=False)
class ConvSpec:
    """A validated convolution problem: shapes, dtype and parameters, and no method.

    Build it with :func:`spec` (or get it as ``plan.spec``); it is immutable
    and safe to share between threads. Methods keep per-problem
    precomputation (FFTW plans, sparsity patterns, tilings) through
    :meth:`cached`, under keys that start with their own name.

    Attributes
    ----------
    x_shape, w_shape : tuple of int
        ``(N, C_in, *spatial)`` and ``(C_out, C_in // groups, *kernel)``.
    dtype : numpy.dtype
        float32 or float64: the dtype of the computation (of the real and
        imaginary parts, for a complex problem).
    is_complex : bool
        Complex inputs and results (``result_dtype`` complex64 or complex128),
        computed by the method as real convolutions of the parts.
    stride, dilation : tuple of int
        One per spatial dim.
    padding : tuple of (int, int)
        ``(lo, hi)`` per spatial dim.
    groups : int
    padding_mode : str
    workspace_limit : int or None
        Per-problem workspace limit in bytes; ``None`` follows the global limit.

    Examples
    --------
    >>> import numpy as np, convlab as cl
    >>> s = cl.spec((8, 16, 32, 32), (32, 16, 3, 3), np.float32, stride=2, padding=1)
    >>> s.output_shape, s.padding, s.dtype
    ((8, 32, 16, 16), ((1, 1), (1, 1)), dtype('float32'))
    >>> s.flops  # 2 per multiply-add of the direct algorithm
    18874368
    """

    x_shape: tuple
    w_shape: tuple
    dtype: np.dtype
    stride: tuple
    padding: tuple
    dilation: tuple
    groups: int
    padding_mode: str
    workspace_limit: int | None = None
    is_complex: bool = False
    # Not init fields: every instance, including each dataclasses.replace copy, starts its own.
    _cache: dict = dataclasses.field(default_factory=dict, init=False, repr=False, compare=False)
    _lock: object = dataclasses.field(default_factory=threading.RLock, init=False, repr=False, compare=False)

    # ----- derived geometry
    @property
    def ndim(self) -> int:
        """Number of spatial dims (1, 2 or 3)."""
        return len(self.x_shape) - 2

    @property
    def batch(self) -> int:
        return self.x_shape[0]

    @property
    def in_channels(self) -> int:
        return self.x_shape[1]

    @property
    def out_channels(self) -> int:
        return self.w_shape[0]

    @_derived
    def input_size(self) -> tuple:
        return self.x_shape[2:]

    @_derived
    def kernel_size(self) -> tuple:
        return self.w_shape[2:]

    @_derived
    def padded_size(self) -> tuple:
        return tuple(n + lo + hi for n, (lo, hi) in zip(self.input_size, self.padding))

    @_derived
    def dilated_kernel_size(self) -> tuple:
        return tuple(d * (k - 1) + 1 for k, d in zip(self.kernel_size, self.dilation))

    @_derived
    def output_size(self) -> tuple:
        return tuple(
            (p - e) // s + 1 for p, e, s in zip(self.padded_size, self.dilated_kernel_size, self.stride)
        )

    @_derived
    def output_shape(self) -> tuple:
        return (self.batch, self.out_channels, *self.output_size)

    @_derived
    def result_dtype(self) -> np.dtype:
        """The dtype of the results: ``dtype``, or its complex twin for a complex problem."""
        return np.result_type(self.dtype, np.complex64) if self.is_complex else self.dtype

    @_derived
    def empty(self) -> bool:
        """True when the input, the weights or the output has no elements (N, C_in or C_out is 0)."""
        return 0 in (*self.x_shape, *self.w_shape)

    @_derived
    def key(self) -> tuple:
        """A hashable key of everything that defines the problem."""
        key = (self.x_shape, self.w_shape, self.dtype.str, self.stride, self.padding, self.dilation,
               self.groups, self.padding_mode)
        return key + ("complex",) if self.is_complex else key  # real keys unchanged: stored caches still match

    @_derived
    def flops(self) -> int:
        """Multiply-adds of the forward pass, counted as 2 FLOPs each (an exact Python int)."""
        per_output = 2 * (self.in_channels // self.groups) * math.prod(self.kernel_size)
        return per_output * math.prod(self.output_shape)

    @property
    def limit(self) -> int:
        """The workspace limit in force for this problem, in bytes."""
        return self.workspace_limit if self.workspace_limit is not None else get_workspace_limit()

    def explicitly_padded(self) -> ConvSpec:
        """The same convolution as a valid (unpadded) one of the input padded by ``padding_mode``.

        A method that does not apply a padding mode itself runs this spec on
        ``padding.pad(x, spec.padding, spec.padding_mode)``.
        """
        # one instance per spec, so that what methods cache on it survives from call to call
        return self.cached(("spec", "explicitly_padded"), lambda: dataclasses.replace(
            self, x_shape=(self.batch, self.in_channels, *self.padded_size),
            padding=((0, 0),) * self.ndim, padding_mode="zeros",
        ))

    # ----- helpers for methods
    def zero_pad(self, x: np.ndarray) -> np.ndarray:
        """``x`` zero-padded by ``self.padding`` (``x`` itself when there is no padding)."""
        return _padding.pad(x, self.padding, "zeros")

    def crop_padding(self, xp: np.ndarray) -> np.ndarray:
        """Adjoint of :meth:`zero_pad`: the centre of a padded-size array."""
        return xp[(Ellipsis, *(slice(lo, lo + n) for (lo, _), n in zip(self.padding, self.input_size)))]

    def cached(self, key: Hashable, factory: Callable[[], Any]) -> Any:
        """Per-spec cache: ``factory()`` is called once per key, even from several threads."""
        try:
            return self._cache[key]
        except KeyError:
            with self._lock:
                if key not in self._cache:
                    self._cache[key] = factory()
                return self._cache[key]


def spec(x_shape: Any, w_shape: Any, dtype: Any = np.float64, *, stride: Any = 1, padding: Any = 0,
         dilation: Any = 1, groups: Any = 1, padding_mode: Any = "zeros",
         workspace_limit: Any = None) -> ConvSpec:
    """Validate a convolution problem and return its :class:`ConvSpec`.

    Parameters
    ----------
    x_shape : tuple of int
        ``(N, C_in, *spatial)`` with 1, 2 or 3 spatial dims.
    w_shape : tuple of int
        ``(C_out, C_in // groups, *kernel)``.
    dtype : dtype, default float64
        Input dtype; the problem's results have :func:`compute_dtype` of it (a
        complex one makes ``is_complex`` true and ``dtype`` its real part's).
    stride, dilation : int or tuple of int
    padding : int, tuple of int, tuple of (int, int), or {"valid", "same", "full"}
    groups : int
    padding_mode : {"zeros", "reflect", "replicate", "circular", "symmetric"}
    workspace_limit : int, optional
        Bytes of scratch memory a method may use; default: the global limit.

    Raises
    ------
    ConvError, ConvTypeError
        When any parameter is invalid; the message names it.

    Examples
    --------
    >>> import numpy as np, convlab as cl
    >>> cl.spec((2, 3, 32, 32), (8, 3, 5, 5), np.float32, padding="same").padding
    ((2, 2), (2, 2))
    >>> cl.spec((1, 1, 4, 4), (1, 1, 5, 5))
    Traceback (most recent call last):
    ...
    convlab.errors.ConvError: kernel size 5 with dilation 1 spans 5 in spatial dim 0, larger than the padded ...
    """
    x_shape, w_shape = _shape("x_shape", x_shape), _shape("w_shape", w_shape)
    groups = check_shapes(x_shape, w_shape, groups)
    ndim = len(x_shape) - 2
    stride = per_dim("stride", stride, ndim, 1)
    dilation = per_dim("dilation", dilation, ndim, 1)
    pairs = padding_pairs(padding, ndim, w_shape[2:], dilation, stride)
    _check_padding_mode(padding_mode, pairs, x_shape[2:])
    largest = np.iinfo(np.intp).max  # numpy indexes with intp: larger values cannot be sliced at all
    for name, values in (("stride", stride), ("dilation", dilation), ("padding", sum(pairs, ()))):
        if any(v > largest for v in values):
            raise ConvError(f"{name}={values!r} must be at most {largest} in every spatial dim")
    if workspace_limit is not None:
        workspace_limit = check_limit(workspace_limit)
    dtype = compute_dtype(dtype)
    real = np.dtype(dtype.char.lower()) if dtype.kind == "c" else dtype  # complex64 -> float32, complex128 -> float64
    result = ConvSpec(x_shape, w_shape, real, stride, pairs, dilation, groups, padding_mode, workspace_limit,
                      dtype.kind == "c")
    for dim, (padded, extent) in enumerate(zip(result.padded_size, result.dilated_kernel_size)):
        if extent > padded:
            raise ConvError(
                f"kernel size {result.kernel_size[dim]} with dilation {result.dilation[dim]} spans {extent} "
                f"in spatial dim {dim}, larger than the padded input size {padded}"
            )
    # exact Python ints: a shape numpy cannot even describe is refused here, not by an allocation
    largest = np.iinfo(np.intp).max
    for what, shape in (("padded input", (*x_shape[:2], *result.padded_size)), ("output", result.output_shape)):
        if math.prod(max(v, 1) for v in shape) > largest:
            raise ConvError(f"padding={padding!r} with stride={result.stride} gives a {what} of shape {shape}, "
                            f"beyond what an array can hold ({largest} elements)")
    return result


def transpose_spec(x_shape: tuple, w_shape: tuple, dtype: Any, *, stride: Any = 1, padding: Any = 0,
                   output_padding: Any = 0, dilation: Any = 1, groups: Any = 1, output_size: Any = None,
                   workspace_limit: Any = None) -> ConvSpec:
    """The forward convolution whose input gradient is the transposed convolution of ``x`` by ``w``.

    ``x`` is ``(N, C_in, *spatial)`` and ``w`` ``(C_in, C_out // groups, *kernel)``,
    as in PyTorch's ``conv_transpose{1,2,3}d``; the returned spec has
    ``x_shape = (N, C_out, *out)`` with
    ``out = (n - 1) * stride - 2 * padding + dilation * (k - 1) + output_padding + 1``;
    ``output_size`` (the spatial sizes, optionally preceded by N and C_out, as PyTorch) picks the
    ``output_padding`` that gives it instead.
    """
    x_shape, w_shape = _shape("x.shape", x_shape), _shape("w.shape", w_shape)
    if len(x_shape) - 2 not in SPATIAL_DIMS or len(w_shape) != len(x_shape):
        check_shapes(x_shape, w_shape, 1)  # raises with the standard message
    groups = check_int("groups", groups, minimum=1)
    if x_shape[1] != w_shape[0]:
        raise ConvError(f"x.shape[1]={x_shape[1]} must equal w.shape[0]={w_shape[0]} "
                        f"(C_in of the transposed convolution)")
    ndim = len(x_shape) - 2
    stride_t = per_dim("stride", stride, ndim, 1)
    dilation_t = per_dim("dilation", dilation, ndim, 1)
    padding_t = per_dim("padding", padding, ndim, 0)
    extra = per_dim("output_padding", output_padding, ndim, 0)
    if output_size is not None:
        if any(extra):
            raise ConvError(f"give output_size or output_padding, not both (output_padding={output_padding!r})")
        extra = _output_padding_for(output_size, x_shape, w_shape, stride_t, padding_t, dilation_t)
    for dim, (op, s, d) in enumerate(zip(extra, stride_t, dilation_t)):
        if op >= max(s, d):
            raise ConvError(
                f"output_padding={output_padding!r} must be smaller than stride or dilation in every dim, "
                f"but spatial dim {dim} has output_padding={op}, stride={s}, dilation={d}"
            )
    out = tuple((n - 1) * s - 2 * p + d * (k - 1) + op + 1
                for n, s, p, d, k, op in zip(x_shape[2:], stride_t, padding_t, dilation_t, w_shape[2:], extra))
    if any(o < 1 for o in out):
        raise ConvError(f"conv_transpose output size {out} must be positive; reduce padding={padding!r}")
    return spec((x_shape[0], w_shape[1] * groups, *out), w_shape, dtype, stride=stride_t, padding=padding_t,
                dilation=dilation_t, groups=groups, workspace_limit=workspace_limit)


def _output_padding_for(output_size: Any, x_shape: tuple, w_shape: tuple, stride: tuple, padding: tuple,
                        dilation: tuple) -> tuple[int, ...]:
    """PyTorch's reading of ``output_size``: the ``output_padding`` per dim that gives it."""
    ndim = len(x_shape) - 2
    if not isinstance(output_size, (tuple, list)) or not all(is_int(v) for v in output_size):
        raise ConvTypeError(f"output_size must be a tuple of ints, but got {output_size!r}")
    if len(output_size) == ndim + 2:
        output_size = output_size[2:]
    if len(output_size) != ndim:
        raise ConvError(f"output_size={tuple(output_size)!r} must have {ndim} or {ndim + 2} entries "
                        f"(the spatial sizes, optionally preceded by N and C_out)")
    extra = []
    for dim, (size, n, k, s, p, d) in enumerate(zip(output_size, x_shape[2:], w_shape[2:], stride, padding,
                                                    dilation)):
        smallest = (n - 1) * s - 2 * p + d * (k - 1) + 1
        if not smallest <= size <= smallest + s - 1:
            raise ConvError(
                f"output_size={tuple(output_size)!r}: spatial dim {dim} requests size {size}, but sizes from "
                f"{smallest} to {smallest + s - 1} are possible for input size {n} with stride {s}, "
                f"padding {p}, dilation {d} and kernel size {k}")
        extra.append(int(size - smallest))
    return tuple(extra)


def as_spec(name: str, value: Any) -> ConvSpec:
    """The :class:`ConvSpec` of ``value``: a spec itself, or anything carrying one as ``.spec`` (a plan)."""
    found = value if isinstance(value, ConvSpec) else getattr(value, "spec", None)
    if not isinstance(found, ConvSpec):
        raise ConvTypeError(f"{name} must be a ConvSpec or a ConvPlan (from convlab.spec or convlab.plan), "
                            f"but got {value!r}")
    return found


def check_autotune(value: Any) -> bool | None:
    """The ``autotune=`` argument: a bool or ``None`` (follow :func:`convlab.get_autotune`)."""
    return check_bool("autotune", value, allow_none=True)
