"""Outside oracles: PyTorch (optional) and scipy, computed in float64."""

import warnings

import numpy as np
import pytest

import convlab as cl

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # torch is an optional test extra
    torch = None

requires_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed (pip install .[torch])")

_TORCH_PAD_MODE = {"zeros": "constant", "reflect": "reflect", "replicate": "replicate", "circular": "circular"}


def torch_conv(case, x, w, b, grad_y):
    """``y, dx, dw, db`` from ``torch.nn.functional.conv{1,2,3}d`` in float64.

    Zero padding given as a string goes to torch as that string, so that
    convlab's reading of ``"same"``/``"valid"`` is checked against torch's; any
    other padding is applied with ``F.pad`` in the case's mode, as
    ``torch.nn.ConvNd`` does for non-zero padding modes.
    """
    ndim = len(case.x_shape) - 2
    conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[ndim]
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    wt = torch.tensor(w, dtype=torch.float64, requires_grad=True)
    bt = torch.tensor(b, dtype=torch.float64, requires_grad=True) if b is not None else None
    if isinstance(case.padding, str) and case.padding != "full" and case.padding_mode == "zeros":
        inp, padding = xt, case.padding
    else:
        plan = cl.plan(case.x_shape, case.w_shape, method="direct", **case.params)
        flat = [v for pair in reversed(plan.padding) for v in pair]  # F.pad: last dim first
        if case.padding_mode == "symmetric":  # torch has no such mode: numpy's, as a differentiable gather
            index = [torch.as_tensor(np.pad(np.arange(n), pair, mode="symmetric"))
                     for n, pair in zip(case.x_shape[2:], plan.padding)]
            inp = xt
            for axis, idx in enumerate(index):
                inp = inp.index_select(2 + axis, idx)
            padding = 0
        else:
            inp, padding = F.pad(xt, flat, mode=_TORCH_PAD_MODE[case.padding_mode]), 0
    with warnings.catch_warnings():  # torch notes that even kernels with "same" copy the input
        warnings.simplefilter("ignore", UserWarning)
        y = conv(inp, wt, bt, stride=case.stride, padding=padding, dilation=case.dilation, groups=case.groups)
    y.backward(torch.tensor(grad_y, dtype=torch.float64))
    db = bt.grad.numpy() if bt is not None else np.asarray(grad_y, np.float64).sum(axis=(0, *range(2, y.ndim)))
    return y.detach().numpy(), xt.grad.numpy(), wt.grad.numpy(), db


def traced_peak(call):
    """Peak bytes numpy and Python allocate while ``call()`` runs (:mod:`tracemalloc`): the measured side of
    the tests that check a method's ``workspace_bytes`` bounds what a pass allocates."""
    import tracemalloc

    tracemalloc.start()
    try:
        call()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
