"""Dense layer, ReLU and Flatten.

With a batch stored row-wise (``x`` of shape ``(N, in)``), the linear layer
is ``y = x · Wᵀ + b``; its backward pass is the matrix-product chain rule
(see ``docs/cnn.md``)::

    dW = dyᵀ · x      (out, N) · (N, in)  -> (out, in)
    db = sum_n dy     (out,)
    dx = dy · W       (N, out) · (out, in) -> (N, in)

ReLU is element-wise, so its backward pass is a Hadamard product with the
derivative: ``dx = dy ⊙ [x > 0]``.
"""

import numpy as np

from ..checks import check_positive_int
from .init import as_generator, bias_uniform, kaiming_uniform
from .module import Module, Parameter, check_grad_shape

__all__ = ["Linear", "ReLU", "Flatten"]


def _positive_int(name, value):
    return check_positive_int(name, value)


class Linear(Module):
    """``y = x · Wᵀ + b``, as ``torch.nn.Linear``.

    Parameters
    ----------
    in_features, out_features : int
    bias : bool, default True
    dtype : dtype, default float32
    rng : None, int or numpy.random.Generator
        Source of the initial weights (PyTorch's default initialisation).

    Attributes
    ----------
    weight : Parameter, shape (out_features, in_features)
    bias : Parameter, shape (out_features,), or None

    Examples
    --------
    >>> layer = Linear(3, 2, rng=0)
    >>> y = layer(np.ones((4, 3), np.float32))
    >>> dx = layer.backward(np.ones((4, 2), np.float32))
    >>> y.shape, dx.shape, layer.weight.grad.shape
    ((4, 2), (4, 3), (2, 3))
    """

    def __init__(self, in_features, out_features, bias=True, *, dtype=np.float32, rng=None):
        super().__init__()
        self.in_features = _positive_int("in_features", in_features)
        self.out_features = _positive_int("out_features", out_features)
        rng = as_generator(rng)
        self.weight = Parameter(kaiming_uniform(rng, (self.out_features, self.in_features), self.in_features, dtype))
        self.bias = Parameter(bias_uniform(rng, self.out_features, self.in_features, dtype)) if bias else None

    def forward(self, x):
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"Linear expects x of shape (N, {self.in_features}), but got {x.shape}")
        y = x @ self.weight.value.T
        if self.bias is not None:
            y += self.bias.value
        self._save(x)
        return y

    def backward(self, grad_y):
        (x,) = self._saved_for_backward()
        grad_y = check_grad_shape(self, grad_y, (x.shape[0], self.out_features))
        self.weight.set_grad(grad_y.T @ x)
        if self.bias is not None:
            self.bias.set_grad(grad_y.sum(axis=0))
        return grad_y @ self.weight.value

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class ReLU(Module):
    """``max(x, 0)``; the gradient at 0 is taken as 0, as PyTorch does.

    Examples
    --------
    >>> relu = ReLU()
    >>> relu(np.array([-1.0, 0.0, 2.0])), relu.backward(np.ones(3))
    (array([0., 0., 2.]), array([0., 0., 1.]))
    """

    def forward(self, x):
        x = np.asarray(x)
        self._save(x > 0)
        return np.maximum(x, 0)  # propagates NaN, as torch.relu

    def backward(self, grad_y):
        (positive,) = self._saved_for_backward()
        grad_y = check_grad_shape(self, grad_y, positive.shape)
        return np.where(positive, grad_y, 0).astype(grad_y.dtype, copy=False)


class Flatten(Module):
    """``(N, *rest) -> (N, prod(rest))``, as ``torch.nn.Flatten()``; backward reshapes back.

    Examples
    --------
    >>> flatten = Flatten()
    >>> flatten(np.zeros((2, 3, 4, 5))).shape
    (2, 60)
    >>> flatten.backward(np.ones((2, 60))).shape
    (2, 3, 4, 5)
    """

    def forward(self, x):
        x = np.asarray(x)
        self._save(x.shape)
        return x.reshape(x.shape[0], -1)

    def backward(self, grad_y):
        (shape,) = self._saved_for_backward()
        grad_y = check_grad_shape(self, grad_y, (shape[0], int(np.prod(shape[1:]))))
        return grad_y.reshape(shape)
