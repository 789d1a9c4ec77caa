"""Parameters, the layer base class and :class:`Sequential`.

Every layer computes ``y = forward(x)`` and, from the gradient ``grad_y`` of
a scalar loss with respect to ``y``, ``dx = backward(grad_y)``; a layer with
parameters also stores the gradient of each parameter in its ``.grad``.

One forward/backward pair at a time
-----------------------------------
``forward`` keeps what ``backward`` needs (a reference to its input, a mask,
the plan it ran) and ``backward`` consumes it: the next ``backward`` needs a
new ``forward``. A ``backward`` without a preceding ``forward`` raises
:class:`RuntimeError` instead of silently reusing stale state. A ``forward``
in evaluation mode (:meth:`Module.eval`) keeps nothing, so evaluating on
held-out data between a training ``forward`` and its ``backward`` is safe.
The input is kept by reference, not copied: do not modify it in place
before ``backward``.
"""

import numpy as np

__all__ = ["Parameter", "Module", "Sequential"]


class Parameter:
    """A trainable array and the gradient of the loss with respect to it.

    Attributes
    ----------
    value : ndarray
        The parameter. Optimisers update it in place, so references to it
        stay valid.
    grad : ndarray or None
        Gradient from the last ``backward`` (overwritten, not accumulated),
        same shape and dtype as ``value``; ``None`` before the first one.

    Examples
    --------
    >>> p = Parameter(np.zeros(3))
    >>> p.shape, p.grad is None
    ((3,), True)
    """

    def __init__(self, value):
        self.value = np.asarray(value)
        self.grad = None

    @property
    def shape(self):
        return self.value.shape

    def set_grad(self, grad):
        """Store ``grad`` (cast to the parameter's dtype) as the gradient."""
        grad = np.asarray(grad)
        if grad.shape != self.value.shape:
            raise ValueError(f"gradient shape {grad.shape} does not match parameter shape {self.value.shape}")
        self.grad = grad.astype(self.value.dtype, copy=False)

    def __repr__(self):
        return f"Parameter(shape={self.value.shape}, dtype={self.value.dtype})"


class Module:
    """Base class of the layers: parameters, sub-layers, training mode and saved state.

    Subclasses implement ``forward(x)`` and ``backward(grad_y)``; they keep
    what ``backward`` needs with :meth:`_save` and fetch it with
    :meth:`_saved_for_backward`.

    Attributes
    ----------
    training : bool
        Whether ``forward`` keeps state for ``backward`` (see :meth:`train`
        and :meth:`eval`).

    Examples
    --------
    A layer that doubles its input, of any shape:

    >>> class Double(Module):
    ...     def forward(self, x):
    ...         x = np.asarray(x)
    ...         self._save(x.shape)
    ...         return 2 * x
    ...     def backward(self, grad_y):
    ...         (shape,) = self._saved_for_backward()
    ...         return 2 * check_grad_shape(self, grad_y, shape)
    >>> layer = Double()
    >>> layer(np.ones((2, 3))).shape
    (2, 3)
    >>> layer.backward(np.ones((2, 3)))[0]
    array([2., 2., 2.])
    >>> layer.backward(np.ones((2, 3)))
    Traceback (most recent call last):
    ...
    RuntimeError: Double.backward() called without a preceding forward() in training mode: each forward() (in ...
    """

    def __init__(self):
        self.training = True
        self._saved = None

    # ----- parameters
    def named_parameters(self, prefix=""):
        """Yield ``(name, Parameter)`` for this layer and its sub-layers, in definition order."""
        for name, value in vars(self).items():
            if isinstance(value, Parameter):
                yield prefix + name, value
            elif isinstance(value, Module):
                yield from value.named_parameters(prefix + name + ".")

    def parameters(self):
        """Yield every :class:`Parameter`, as an optimiser walks them."""
        for _, p in self.named_parameters():
            yield p

    def children(self):
        """Direct sub-layers."""
        return [v for v in vars(self).values() if isinstance(v, Module)]

    # ----- modes
    def train(self, mode=True):
        """Set training mode (``forward`` keeps state for ``backward``) on this layer and its sub-layers."""
        self.training = bool(mode)
        for child in self.children():
            child.train(mode)
        return self

    def eval(self):
        """Evaluation mode: ``forward`` keeps nothing, and ``backward`` is not available."""
        return self.train(False)

    # ----- saved state
    def _save(self, *values):
        if self.training:
            self._saved = values

    def _saved_for_backward(self):
        """What the last training-mode ``forward`` kept; consumed, so each forward allows one backward."""
        saved, self._saved = self._saved, None
        if saved is None:
            raise RuntimeError(
                f"{type(self).__name__}.backward() called without a preceding forward() in training mode: "
                f"each forward() (in training mode) allows exactly one backward()"
            )
        return saved

    def __call__(self, x):
        return self.forward(x)

    def forward(self, x):
        raise NotImplementedError

    def backward(self, grad_y):
        raise NotImplementedError

    def extra_repr(self):
        return ""

    def __repr__(self):
        return f"{type(self).__name__}({self.extra_repr()})"


def check_grad_shape(layer, grad_y, expected):
    """``grad_y`` as an array, or a ValueError naming the layer and both shapes."""
    grad_y = np.asarray(grad_y)
    if grad_y.shape != tuple(expected):
        raise ValueError(
            f"{type(layer).__name__}.backward: grad_y must have the shape of the last forward's output "
            f"{tuple(expected)}, but got {grad_y.shape}"
        )
    return grad_y


class Sequential(Module):
    """Layers applied in order; ``backward`` runs them in reverse.

    Examples
    --------
    >>> from convlab.nn import Linear, ReLU
    >>> net = Sequential(Linear(4, 8, rng=0), ReLU(), Linear(8, 2, rng=1))
    >>> y = net(np.ones((5, 4), np.float32))
    >>> net.backward(np.ones_like(y)).shape, len(list(net.parameters()))
    ((5, 4), 4)
    """

    def __init__(self, *layers):
        super().__init__()
        for i, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise TypeError(f"Sequential expects layers (Module instances), but argument {i} is {layer!r}")
        self.layers = list(layers)

    def named_parameters(self, prefix=""):
        for i, layer in enumerate(self.layers):
            yield from layer.named_parameters(f"{prefix}{i}.")

    def children(self):
        return list(self.layers)

    def __getitem__(self, index):
        return self.layers[index]

    def __len__(self):
        return len(self.layers)

    def __iter__(self):
        return iter(self.layers)

    def forward(self, x):
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, grad_y):
        for layer in reversed(self.layers):
            grad_y = layer.backward(grad_y)
        return grad_y

    def __repr__(self):
        lines = [f"  ({i}): {layer!r}" for i, layer in enumerate(self.layers)]
        return "Sequential(\n" + "\n".join(lines) + "\n)"
