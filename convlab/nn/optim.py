"""SGD with momentum and Adam, with PyTorch's update rules.

An optimiser walks the :class:`~convlab.nn.Parameter` objects it was given
and updates each ``value`` in place from its ``grad``; parameters without a
gradient (``grad is None``) are left alone. Optimiser state (momentum,
moments) is kept in the parameter's dtype.
"""

import numpy as np

from .module import Parameter

__all__ = ["Optimizer", "SGD", "Adam"]


def _non_negative(name, value):
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, but got {value!r}")
    return float(value)


class Optimizer:
    """Base class: holds the parameters and one state dict per parameter.

    Subclasses implement ``_update(value, grad, state)``, which changes
    ``value`` in place; ``state`` is the parameter's own dict, kept between steps.

    Parameters
    ----------
    parameters : iterable of Parameter
        What to optimise, usually ``model.parameters()``; must not be empty.
    lr : float
        Learning rate, finite and ``>= 0``.

    Examples
    --------
    Plain gradient descent without momentum:

    >>> from convlab.nn import Parameter
    >>> class Descent(Optimizer):
    ...     def _update(self, value, grad, state):
    ...         value -= self.lr * grad
    >>> p = Parameter(np.array([1.0, 2.0])); p.grad = np.array([1.0, -1.0])
    >>> opt = Descent([p], lr=0.5); opt.step()
    >>> p.value
    array([0.5, 2.5])
    >>> opt.zero_grad(); opt.step()  # no gradient: the parameter stays
    >>> p.value
    array([0.5, 2.5])
    """

    def __init__(self, parameters, lr):
        self.params = list(parameters)
        if not self.params:
            raise ValueError("the optimiser got an empty parameter list")
        for p in self.params:
            if not isinstance(p, Parameter):
                raise TypeError(f"optimisers take Parameter objects (model.parameters()), but got {p!r}")
        self.lr = _non_negative("lr", lr)
        self.state = [dict() for _ in self.params]

    def zero_grad(self):
        """Forget the gradients (layers overwrite them on backward anyway)."""
        for p in self.params:
            p.grad = None

    def step(self):
        """Update every parameter that has a gradient."""
        for p, state in zip(self.params, self.state):
            if p.grad is not None:
                self._update(p.value, p.grad, state)

    def _update(self, value, grad, state):
        raise NotImplementedError


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum and weight decay, as ``torch.optim.SGD``.

    ``g = grad + weight_decay * p``; ``buf = momentum * buf + g`` (``buf = g``
    on the first step); ``p -= lr * buf``.

    Examples
    --------
    >>> from convlab.nn import Parameter
    >>> p = Parameter(np.array([1.0])); p.grad = np.array([0.5])
    >>> opt = SGD([p], lr=0.1, momentum=0.9); opt.step(); opt.step()
    >>> p.value
    array([0.855])
    """

    def __init__(self, parameters, lr, momentum=0.0, weight_decay=0.0):
        super().__init__(parameters, lr)
        self.momentum = _non_negative("momentum", momentum)
        self.weight_decay = _non_negative("weight_decay", weight_decay)

    def _update(self, value, grad, state):
        g = grad + self.weight_decay * value if self.weight_decay else grad
        if self.momentum:
            buf = state.get("momentum")
            if buf is None:
                buf = state["momentum"] = np.array(g, dtype=value.dtype)
            else:
                buf *= self.momentum
                buf += g
            g = buf
        value -= (self.lr * g).astype(value.dtype, copy=False)


class Adam(Optimizer):
    """Adam, as ``torch.optim.Adam`` (L2 ``weight_decay`` added to the gradient, not AdamW).

    With ``t`` the step count: ``m = b1 m + (1 - b1) g``, ``v = b2 v + (1 - b2) g²``,
    ``p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)``.

    Examples
    --------
    >>> from convlab.nn import Parameter
    >>> p = Parameter(np.array([1.0, -1.0])); p.grad = np.array([3.0, -0.01])
    >>> Adam([p], lr=0.1).step()
    >>> p.value.round(6)  # the first step moves every entry by about lr
    array([ 0.9, -0.9])
    """

    def __init__(self, parameters, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(parameters, lr)
        beta1, beta2 = betas
        if not (0 <= beta1 < 1 and 0 <= beta2 < 1):
            raise ValueError(f"betas must both be in [0, 1), but got {betas!r}")
        self.betas = (float(beta1), float(beta2))
        self.eps = _non_negative("eps", eps)
        self.weight_decay = _non_negative("weight_decay", weight_decay)

    def _update(self, value, grad, state):
        beta1, beta2 = self.betas
        g = grad + self.weight_decay * value if self.weight_decay else grad
        if not state:
            state.update(step=0, m=np.zeros_like(value), v=np.zeros_like(value))
        state["step"] += 1
        m, v, t = state["m"], state["v"], state["step"]
        m *= beta1
        m += (1 - beta1) * g
        v *= beta2
        v += (1 - beta2) * (g * g)
        step_size = self.lr / (1 - beta1**t)
        denom = np.sqrt(v) / np.sqrt(1 - beta2**t) + self.eps
        value -= (step_size * m / denom).astype(value.dtype, copy=False)
