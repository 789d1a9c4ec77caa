"""The method interface and the registry every method joins.

A method is a small stateless class. It receives a validated
:class:`~convlab.plan.ConvPlan` whose ``padding_mode`` is one of its
``native_padding_modes`` (the plan pads the input itself for the other modes
and folds the gradient back with the exact adjoint), and arrays already
converted to ``plan.dtype``. It never re-checks user input and never writes
into its input arrays.

To add a method: subclass :class:`Method`, implement ``forward``,
``backward_input`` and ``backward_weight``, and decorate it with
:func:`register`. The shared test suite then checks it against every other
method and the outside oracles.
"""

import threading

import numpy as np

from ..errors import ConvError

__all__ = ["Method", "WeightDerived", "register", "get_method", "methods", "unregister"]

_registry = {}
_registry_lock = threading.Lock()


class Method:
    """Base class of the convolution methods.

    Attributes
    ----------
    name : str
        The name users pass as ``method=``.
    native_padding_modes : frozenset of str
        Padding modes the method applies itself. For any other mode the plan
        pads the input explicitly and runs the method on a valid
        (unpadded) inner plan.

    Examples
    --------
    A forward-only method in a few lines (a real one also implements
    ``backward_input`` and ``backward_weight``, and then the shared test
    suite checks it against every other method):

    >>> import numpy as np, convlab as cl
    >>> @cl.register
    ... class Einsum1d(cl.Method):
    ...     name = "einsum1d"
    ...     def unsupported_reason(self, plan):
    ...         if plan.ndim != 1 or plan.stride != (1,) or plan.dilation != (1,) or plan.groups != 1:
    ...             return "1-D, stride 1, dilation 1 and groups 1 only"
    ...     def forward(self, plan, x, w):
    ...         windows = np.lib.stride_tricks.sliding_window_view(plan.zero_pad(x), w.shape[2], axis=2)
    ...         return np.einsum("ncpk,ock->nop", windows, w)
    >>> x, w = np.arange(10.0).reshape(1, 2, 5), np.ones((3, 2, 2))
    >>> bool(np.allclose(cl.conv(x, w, padding=1, method="einsum1d"), cl.conv(x, w, padding=1, method="direct")))
    True
    >>> "einsum1d" in cl.methods()
    True
    >>> unregister("einsum1d")
    """

    name = None
    native_padding_modes = frozenset({"zeros"})

    def unsupported_reason(self, plan):
        """Why this method cannot run ``plan``, or ``None`` when it can."""
        return None

    def supports(self, plan):
        """True when the method can run ``plan``."""
        return self.unsupported_reason(plan) is None

    def workspace_bytes(self, plan):
        """Scratch memory one call needs beyond its inputs and output, in bytes."""
        return 0

    def forward(self, plan, x, w):
        """Return ``y`` of shape ``plan.output_shape`` (no bias)."""
        raise NotImplementedError

    def backward_input(self, plan, grad_y, w):
        """Return ``dx`` of shape ``plan.x_shape``."""
        raise NotImplementedError

    def backward_weight(self, plan, grad_y, x):
        """Return ``dw`` of shape ``plan.w_shape``."""
        raise NotImplementedError

    def __repr__(self):
        return f"<convlab method {self.name!r}>"


class WeightDerived:
    """Values a method derives from the weights (spectra, Winograd transforms), kept per plan
    and recomputed only when the weights change.

    Training loops and repeated inference call a plan again and again with the
    same weights; comparing ``w`` with a private copy costs ``O(|w|)``, far
    less than a transform. Keep one instance per plan (``plan.cached``).
    """

    def __init__(self):
        self.entry = (None, {})

    def get(self, w, kind, factory):
        """``factory()`` for ``kind``, computed once per distinct ``w``."""
        weights, derived = self.entry  # one atomic read: another thread may replace the entry
        if weights is None or weights.shape != w.shape or not np.array_equal(weights, w):
            weights, derived = w.copy(), {}
            self.entry = (weights, derived)
        if kind not in derived:
            derived[kind] = factory()
        return derived[kind]


def register(cls):
    """Class decorator: add a :class:`Method` subclass to the registry under ``cls.name``.

    Registering is all a new method needs to join ``method=`` choices, ``"auto"``'s
    candidates, the report and the shared test suite; see :class:`Method` for an example.
    """
    if not (isinstance(cls, type) and issubclass(cls, Method)) or not cls.name:
        raise TypeError(f"register expects a Method subclass with a name, got {cls!r}")
    with _registry_lock:
        _registry[cls.name] = cls()
    return cls


def unregister(name):
    """Remove a method from the registry (used by tests of the registry)."""
    with _registry_lock:
        _registry.pop(name, None)


def methods():
    """Names of the registered methods, in registration order.

    Examples
    --------
    >>> import convlab as cl
    >>> "direct" in cl.methods()
    True
    """
    return tuple(_registry)


def get_method(name):
    """The registered :class:`Method` instance called ``name``.

    Examples
    --------
    >>> import convlab as cl
    >>> p = cl.plan((1, 1, 16, 16), (1, 1, 3, 3), stride=2, method="direct")
    >>> cl.get_method("winograd").unsupported_reason(p)
    'stride=(2, 2): Winograd tiles need stride 1 in every dim'
    >>> cl.get_method("direct").workspace_bytes(p) > 0
    True
    """
    try:
        return _registry[name]
    except (KeyError, TypeError):
        allowed = ", ".join(repr(m) for m in ("auto", *_registry))
        raise ConvError(f"method must be one of {{{allowed}}}, but got {name!r}") from None
