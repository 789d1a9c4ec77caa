"""Normalise and validate convolution parameters once, into a frozen plan.

This module is the only place where user input is checked. :func:`plan`
turns every accepted spelling of a parameter into one canonical form
(``stride`` and ``dilation`` as one int per spatial dim, ``padding`` as one
``(lo, hi)`` pair per spatial dim), checks every constraint, resolves
``method="auto"``, and returns a :class:`ConvPlan`. Methods receive the plan
and trust it.

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

import dataclasses
import functools
import threading
from collections import namedtuple

import numpy as np

from . import padding as _padding
from .errors import ConvError, ConvTypeError, UnsupportedPlanError, WorkspaceLimitError
from .methods.base import get_method, methods
from .workspace import check_limit, get_workspace_limit

__all__ = ["ConvPlan", "ConvGrads", "plan", "compute_dtype", "as_array"]

PADDING_STRINGS = frozenset({"valid", "same", "full"})
SPATIAL_DIMS = (1, 2, 3)

ConvGrads = namedtuple("ConvGrads", ["dx", "dw", "db"])
ConvGrads.__doc__ = """Gradients of ``sum(grad_y * conv(x, w, b))``: ``dx``, ``dw`` and ``db``.

Shapes: ``dx`` that of ``x``, ``dw`` that of ``w``, ``db`` ``(C_out,)``.

Examples
--------
>>> import numpy as np, convlab as cl
>>> g = cl.conv_backward(np.ones((2, 3, 4)), np.ones((2, 1, 6)), np.ones((3, 1, 3)), method="direct")
>>> g.dx.shape, g.dw.shape, g.db.tolist()
((2, 1, 6), (3, 1, 3), [8.0, 8.0, 8.0])
"""


# --------------------------------------------------------------- arrays and dtypes
def as_array(name, value):
    """``value`` as a real numeric ndarray (never copied when already one)."""
    if value is None:
        raise ConvTypeError(f"{name} must be an array, but got None")
    array = np.asarray(value)
    if array.dtype.kind not in "biuf":
        raise ConvTypeError(
            f"{name} must be a real numeric array (bool, int or float), but got dtype {array.dtype}"
        )
    return array


def compute_dtype(*dtypes):
    """The dtype a convolution of these dtypes is computed and returned in.

    Floats promote as numpy does (float16 computes in float32); integer and
    bool inputs compute in float64.

    Examples
    --------
    >>> compute_dtype(np.float32, np.float32)
    dtype('float32')
    >>> compute_dtype(np.float32, np.float64), compute_dtype(np.int64)
    (dtype('float64'), dtype('float64'))
    """
    try:
        result = np.result_type(*dtypes)
    except TypeError as exc:
        raise ConvTypeError(f"dtype must be a real numeric dtype, but got {dtypes!r}: {exc}") from None
    if result.kind in "biu":
        return np.dtype(np.float64)
    if result.kind != "f":
        raise ConvTypeError(f"dtype must be a real numeric dtype (float32 or float64), but got {result}")
    if result.itemsize > 8:
        raise ConvTypeError(f"dtype {result} is not supported; use float32 or float64")
    return np.dtype(np.float32) if result.itemsize <= 4 else np.dtype(np.float64)


# --------------------------------------------------------------- parameter normalisation
def _is_int(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _per_dim(name, value, ndim, minimum):
    """An int or one int per spatial dim -> a tuple of ``ndim`` ints >= ``minimum``."""
    if _is_int(value):
        values = (int(value),) * ndim
    elif isinstance(value, (tuple, list)) and all(_is_int(v) for v in value):
        if len(value) != ndim:
            raise ConvError(f"{name}={value!r} must have one entry per spatial dim ({ndim}), but has {len(value)}")
        values = tuple(int(v) for v in value)
    else:
        raise ConvTypeError(f"{name} must be an int or a tuple of {ndim} ints, but got {value!r}")
    if any(v < minimum for v in values):
        raise ConvError(f"{name}={value!r} must be >= {minimum} in every spatial dim")
    return values


def _padding_pairs(padding, ndim, kernel_size, dilation, stride):
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
    if _is_int(padding):
        pairs = ((int(padding), int(padding)),) * ndim
    elif isinstance(padding, (tuple, list)) and len(padding) == ndim:
        pairs = []
        for entry in padding:
            if _is_int(entry):
                pairs.append((int(entry), int(entry)))
            elif isinstance(entry, (tuple, list)) and len(entry) == 2 and all(_is_int(v) for v in entry):
                pairs.append((int(entry[0]), int(entry[1])))
            else:
                raise ConvTypeError(
                    f"padding={padding!r}: each entry must be an int or a (before, after) pair of ints, but got {entry!r}"
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


def _shape(name, shape):
    if not isinstance(shape, (tuple, list)) or not all(_is_int(v) for v in shape):
        raise ConvTypeError(f"{name} must be a tuple of ints, but got {shape!r}")
    return tuple(int(v) for v in shape)


def _check_shapes(x_shape, w_shape, groups):
    if len(x_shape) - 2 not in SPATIAL_DIMS:
        raise ConvError(
            f"x must have 3, 4 or 5 dimensions (N, C_in, *spatial) for 1-, 2- or 3-D convolution, "
            f"but got shape {x_shape}"
        )
    if len(w_shape) != len(x_shape):
        raise ConvError(
            f"w must have {len(x_shape)} dimensions (C_out, C_in/groups, *kernel) to match x of shape "
            f"{x_shape}, but got shape {w_shape}"
        )
    if any(v < 1 for v in x_shape):
        raise ConvError(f"x shape {x_shape} must have every size >= 1")
    if any(v < 1 for v in w_shape):
        raise ConvError(f"w shape {w_shape} must have every size >= 1")
    if not _is_int(groups):
        raise ConvTypeError(f"groups must be an int, but got {groups!r}")
    if groups < 1:
        raise ConvError(f"groups={groups} must be >= 1")
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


def _check_padding_mode(padding_mode, pairs, input_size):
    if padding_mode not in _padding.PADDING_MODES:
        raise ConvError(f"padding_mode must be one of {sorted(_padding.PADDING_MODES)}, but got {padding_mode!r}")
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


# --------------------------------------------------------------- the plan
@dataclasses.dataclass(frozen=True, eq=False)
class ConvPlan:
    """A validated convolution problem: shapes, dtype, parameters and method.

    Build it with :func:`convlab.plan`; it is immutable and safe to share
    between threads. Methods may keep per-plan precomputation (FFTW plans,
    sparsity patterns) through :meth:`cached`.

    Attributes
    ----------
    x_shape, w_shape : tuple of int
        ``(N, C_in, *spatial)`` and ``(C_out, C_in // groups, *kernel)``.
    dtype : numpy.dtype
        float32 or float64: the dtype of the computation and of the results.
    stride, dilation : tuple of int
        One per spatial dim.
    padding : tuple of (int, int)
        ``(lo, hi)`` per spatial dim.
    groups : int
    padding_mode : str
    method : str
        The resolved method name (never ``"auto"``).
    workspace_limit : int or None
        Per-plan workspace limit in bytes; ``None`` follows the global limit.
    output_shape : tuple of int
        ``(N, C_out, *output_size)``.

    Examples
    --------
    >>> import numpy as np, convlab as cl
    >>> p = cl.plan((8, 16, 32, 32), (32, 16, 3, 3), np.float32, stride=2, padding=1, method="im2col")
    >>> p.output_shape, p.padding, p.method, p.dtype
    ((8, 32, 16, 16), ((1, 1), (1, 1)), 'im2col', dtype('float32'))
    >>> p.flops  # 2 per multiply-add of the direct algorithm
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
    method: str
    workspace_limit: int | None = None
    # Not init fields: every instance, including each dataclasses.replace copy, starts its own.
    _cache: dict = dataclasses.field(default_factory=dict, init=False, repr=False, compare=False)
    _lock: object = dataclasses.field(default_factory=threading.RLock, init=False, repr=False, compare=False)

    # ----- derived geometry
    @property
    def ndim(self):
        """Number of spatial dims (1, 2 or 3)."""
        return len(self.x_shape) - 2

    @property
    def batch(self):
        return self.x_shape[0]

    @property
    def in_channels(self):
        return self.x_shape[1]

    @property
    def out_channels(self):
        return self.w_shape[0]

    @property
    def input_size(self):
        return self.x_shape[2:]

    @property
    def kernel_size(self):
        return self.w_shape[2:]

    @property
    def padded_size(self):
        return tuple(n + lo + hi for n, (lo, hi) in zip(self.input_size, self.padding))

    @property
    def dilated_kernel_size(self):
        return tuple(d * (k - 1) + 1 for k, d in zip(self.kernel_size, self.dilation))

    @property
    def output_size(self):
        return tuple(
            (p - e) // s + 1 for p, e, s in zip(self.padded_size, self.dilated_kernel_size, self.stride)
        )

    @property
    def output_shape(self):
        return (self.batch, self.out_channels, *self.output_size)

    @property
    def key(self):
        """A hashable key of everything that defines the problem (not the method)."""
        return (self.x_shape, self.w_shape, self.dtype.str, self.stride, self.padding, self.dilation,
                self.groups, self.padding_mode)

    @property
    def flops(self):
        """Multiply-adds of the forward pass, counted as 2 FLOPs each."""
        per_output = 2 * (self.in_channels // self.groups) * int(np.prod(self.kernel_size))
        return per_output * int(np.prod(self.output_shape))

    @property
    def limit(self):
        """The workspace limit in force for this plan, in bytes."""
        return self.workspace_limit if self.workspace_limit is not None else get_workspace_limit()

    # ----- helpers for methods
    def zero_pad(self, x):
        """``x`` zero-padded by ``self.padding`` (``x`` itself when there is no padding)."""
        return _padding.pad(x, self.padding, "zeros")

    def crop_padding(self, xp):
        """Adjoint of :meth:`zero_pad`: the centre of a padded-size array."""
        return xp[(Ellipsis, *(slice(lo, lo + n) for (lo, _), n in zip(self.padding, self.input_size)))]

    def cached(self, key, factory):
        """Per-plan cache: ``factory()`` is called once per key, even from several threads."""
        try:
            return self._cache[key]
        except KeyError:
            with self._lock:
                if key not in self._cache:
                    self._cache[key] = factory()
                return self._cache[key]

    def with_method(self, method):
        """The same problem run by another method (validated)."""
        return plan(self.x_shape, self.w_shape, self.dtype, stride=self.stride, padding=self.padding,
                    dilation=self.dilation, groups=self.groups, padding_mode=self.padding_mode,
                    method=method, workspace_limit=self.workspace_limit)

    @functools.cached_property
    def inner(self):
        """The plan the method runs: this one, or for a padding mode the method does not
        apply itself, a valid convolution of the explicitly padded input."""
        if self.padding_mode in get_method(self.method).native_padding_modes:
            return self
        return dataclasses.replace(
            self, x_shape=(self.batch, self.in_channels, *self.padded_size),
            padding=((0, 0),) * self.ndim, padding_mode="zeros",
        )

    # ----- running it
    def _array(self, name, value, shape):
        array = as_array(name, value)
        if array.shape != tuple(shape):
            raise ConvError(f"{name} must have shape {tuple(shape)} for this plan, but got {array.shape}")
        return array.astype(self.dtype, copy=False)

    def _check_workspace(self, impl, inner):
        needed = impl.workspace_bytes(inner)
        if needed > self.limit:
            raise WorkspaceLimitError(self.method, needed, self.limit, fitting_methods(self))

    def forward(self, x, w, bias=None):
        """Compute ``y = conv(x, w) + bias``.

        Parameters
        ----------
        x : array_like, shape ``x_shape``
        w : array_like, shape ``w_shape``
        bias : array_like, shape ``(C_out,)``, optional

        Returns
        -------
        y : ndarray, shape ``output_shape``, dtype ``dtype``
        """
        x = self._array("x", x, self.x_shape)
        w = self._array("w", w, self.w_shape)
        impl, inner = get_method(self.method), self.inner
        self._check_workspace(impl, inner)
        if inner is not self:
            x = _padding.pad(x, self.padding, self.padding_mode)
        y = impl.forward(inner, x, w)
        if bias is not None:
            bias = self._array("bias", bias, (self.out_channels,))
            y += bias.reshape((-1,) + (1,) * self.ndim)
        return y

    def backward_input(self, grad_y, w):
        """``dx``: the gradient of ``sum(grad_y * conv(x, w))`` with respect to ``x``."""
        grad_y = self._array("grad_y", grad_y, self.output_shape)
        w = self._array("w", w, self.w_shape)
        impl, inner = get_method(self.method), self.inner
        self._check_workspace(impl, inner)
        dx = impl.backward_input(inner, grad_y, w)
        if inner is not self:
            dx = _padding.pad_adjoint(dx, self.padding, self.padding_mode)
        return dx

    def backward_weight(self, grad_y, x):
        """``dw``: the gradient of ``sum(grad_y * conv(x, w))`` with respect to ``w``."""
        grad_y = self._array("grad_y", grad_y, self.output_shape)
        x = self._array("x", x, self.x_shape)
        impl, inner = get_method(self.method), self.inner
        self._check_workspace(impl, inner)
        if inner is not self:
            x = _padding.pad(x, self.padding, self.padding_mode)
        return impl.backward_weight(inner, grad_y, x)

    def backward(self, grad_y, x, w):
        """Gradients of ``sum(grad_y * conv(x, w, b))``.

        Returns
        -------
        ConvGrads
            Named tuple ``(dx, dw, db)`` with the shapes of ``x``, ``w`` and ``(C_out,)``.
        """
        grad_y = self._array("grad_y", grad_y, self.output_shape)
        # accumulated in float64: a sum over the batch and positions can cancel to far below its terms
        db = grad_y.sum(axis=(0, *range(2, grad_y.ndim)), dtype=np.float64).astype(self.dtype)
        return ConvGrads(self.backward_input(grad_y, w), self.backward_weight(grad_y, x), db)


def fitting_methods(p):
    """Registered methods that support ``p`` and whose workspace fits its limit."""
    fit = []
    for name in methods():
        impl = get_method(name)
        inner = dataclasses.replace(p, method=name).inner
        if impl.supports(inner) and impl.workspace_bytes(inner) <= p.limit:
            fit.append(name)
    return tuple(fit)


def _resolve_method(p, method, autotune):
    if method == "auto":
        from .autotune import get_autotune, tuned_method
        from .selection import choose_method

        return tuned_method(p) if (get_autotune() if autotune is None else autotune) else choose_method(p)
    impl = get_method(method)
    inner = dataclasses.replace(p, method=method).inner
    reason = impl.unsupported_reason(inner)
    if reason is not None:
        raise UnsupportedPlanError(f"method={method!r} does not support this plan: {reason}")
    return method


def plan(x_shape, w_shape, dtype=np.float64, *, stride=1, padding=0, dilation=1, groups=1,
         padding_mode="zeros", method="auto", workspace_limit=None, autotune=None):
    """Validate a convolution problem once and return a reusable :class:`ConvPlan`.

    Parameters
    ----------
    x_shape : tuple of int
        ``(N, C_in, *spatial)`` with 1, 2 or 3 spatial dims.
    w_shape : tuple of int
        ``(C_out, C_in // groups, *kernel)``.
    dtype : dtype, default float64
        Input dtype; the plan computes in :func:`compute_dtype` of it.
    stride, dilation : int or tuple of int
    padding : int, tuple of int, tuple of (int, int), or {"valid", "same", "full"}
    groups : int
    padding_mode : {"zeros", "reflect", "replicate", "circular", "symmetric"}
    method : str
        A name from :func:`convlab.methods` or ``"auto"``.
    workspace_limit : int, optional
        Bytes of scratch memory the method may use; default: the global limit.
    autotune : bool, optional
        For ``method="auto"``: time the candidates once and keep the fastest
        (:mod:`convlab.autotune`) instead of asking the cost model
        (:func:`convlab.choose_method`). Default: :func:`convlab.get_autotune`.

    Returns
    -------
    ConvPlan

    Raises
    ------
    ConvError, ConvTypeError
        When any parameter is invalid; the message names it.

    Examples
    --------
    >>> import numpy as np, convlab as cl
    >>> p = cl.plan((2, 3, 32, 32), (8, 3, 5, 5), np.float32, padding="same", method="direct")
    >>> p.output_shape, p.padding
    ((2, 8, 32, 32), ((2, 2), (2, 2)))
    >>> x = np.ones((2, 3, 32, 32), np.float32); w = np.ones((8, 3, 5, 5), np.float32)
    >>> float(p.forward(x, w)[0, 0, 16, 16])
    75.0
    """
    x_shape, w_shape = _shape("x_shape", x_shape), _shape("w_shape", w_shape)
    _check_shapes(x_shape, w_shape, groups)
    ndim = len(x_shape) - 2
    stride = _per_dim("stride", stride, ndim, 1)
    dilation = _per_dim("dilation", dilation, ndim, 1)
    pairs = _padding_pairs(padding, ndim, w_shape[2:], dilation, stride)
    _check_padding_mode(padding_mode, pairs, x_shape[2:])
    if workspace_limit is not None:
        workspace_limit = check_limit(workspace_limit)
    if not isinstance(method, str):
        raise ConvTypeError(f"method must be a str, one of {('auto', *methods())}, but got {method!r}")
    if method != "auto":
        get_method(method)  # unknown names fail here, listing the registered ones
    p = ConvPlan(x_shape, w_shape, compute_dtype(dtype), stride, pairs, dilation, int(groups),
                 padding_mode, method if method != "auto" else methods()[0], workspace_limit)
    for dim, (padded, extent) in enumerate(zip(p.padded_size, p.dilated_kernel_size)):
        if extent > padded:
            raise ConvError(
                f"kernel size {p.kernel_size[dim]} with dilation {p.dilation[dim]} spans {extent} "
                f"in spatial dim {dim}, larger than the padded input size {padded}"
            )
    if autotune is not None and not isinstance(autotune, bool):
        raise ConvTypeError(f"autotune must be a bool or None, but got {autotune!r}")
    return dataclasses.replace(p, method=_resolve_method(p, method, autotune))
