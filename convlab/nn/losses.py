"""Softmax cross-entropy, the loss of a classifier.

For logits ``z`` of one sample and its label ``t``,
``loss = logsumexp(z) - z[t]``, averaged over the batch. Its gradient needs
no Jacobian of the softmax: ``dz = (softmax(z) - onehot(t)) / N``.
"""

import numpy as np

from .module import Module

__all__ = ["CrossEntropyLoss", "log_softmax"]


def log_softmax(z):
    """``z - logsumexp(z)`` along the last axis, shifted by the maximum so it never overflows.

    Examples
    --------
    >>> np.exp(log_softmax(np.array([[1000.0, 1000.0]])))
    array([[0.5, 0.5]])
    """
    shifted = z - z.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


class CrossEntropyLoss(Module):
    """Mean softmax cross-entropy of logits ``(N, K)`` against integer labels ``(N,)``.

    As ``torch.nn.CrossEntropyLoss()`` (mean reduction, no weights).
    ``forward(logits, labels)`` returns the loss as a Python float;
    ``backward()`` returns its gradient with respect to the logits.

    Examples
    --------
    >>> loss = CrossEntropyLoss()
    >>> print(f"{loss(np.zeros((2, 4)), np.array([0, 3])):.6f}")  # log(4): uniform over 4 classes
    1.386294
    >>> loss.backward()
    array([[-0.375,  0.125,  0.125,  0.125],
           [ 0.125,  0.125,  0.125, -0.375]])
    """

    def forward(self, logits, labels):
        logits, labels = np.asarray(logits), np.asarray(labels)
        if logits.ndim != 2:
            raise ValueError(f"logits must have shape (N, classes), but got {logits.shape}")
        if labels.shape != logits.shape[:1] or labels.dtype.kind not in "iu":
            raise ValueError(f"labels must be integers of shape ({logits.shape[0]},), but got "
                             f"{labels.dtype} of shape {labels.shape}")
        if labels.size and (labels.min() < 0 or labels.max() >= logits.shape[1]):
            raise ValueError(f"labels must be in [0, {logits.shape[1]}), but range over "
                             f"[{labels.min()}, {labels.max()}]")
        log_p = log_softmax(logits)
        self._save(log_p, labels)
        return float(-log_p[np.arange(labels.size), labels].mean())

    def __call__(self, logits, labels):
        return self.forward(logits, labels)

    def backward(self, grad_loss=1.0):
        """Gradient of ``grad_loss * loss`` with respect to the logits of the last forward."""
        log_p, labels = self._saved_for_backward()
        grad = np.exp(log_p)
        grad[np.arange(labels.size), labels] -= 1
        return grad * (grad_loss / labels.size)
