"""Layers, a loss and optimisers for a small convolutional network, in numpy.

The convolution layers run any registered convlab method (``method=``);
every layer has a ``forward`` and a hand-written ``backward`` (see
``docs/cnn.md`` for how each follows from the chain rule), and exposes its
trainable arrays as :class:`Parameter` objects (``.value``, ``.grad``) that
:class:`SGD` and :class:`Adam` walk.

>>> import numpy as np
>>> from convlab import nn
>>> net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, rng=0), nn.ReLU(), nn.MaxPool2d(2),
...                     nn.Flatten(), nn.Linear(4 * 4 * 4, 10, rng=1))
>>> loss_fn, opt = nn.CrossEntropyLoss(), nn.Adam(net.parameters(), lr=1e-2)
>>> x, labels = np.ones((2, 1, 8, 8), np.float32), np.array([3, 7])
>>> loss = loss_fn(net(x), labels)
>>> dx = net.backward(loss_fn.backward()); opt.step()
>>> dx.shape
(2, 1, 8, 8)
"""

from .conv import Conv1d, Conv2d, Conv3d
from .layers import Flatten, Linear, ReLU
from .losses import CrossEntropyLoss, log_softmax
from .module import Module, Parameter, Sequential
from .optim import SGD, Adam, Optimizer
from .pooling import AvgPool2d, MaxPool2d

__all__ = [
    "Module", "Parameter", "Sequential",
    "Linear", "ReLU", "Flatten",
    "Conv1d", "Conv2d", "Conv3d",
    "MaxPool2d", "AvgPool2d",
    "CrossEntropyLoss", "log_softmax",
    "Optimizer", "SGD", "Adam",
]
