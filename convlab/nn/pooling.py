"""2-D max and average pooling over strided window views.

Both poolings read the windows as a strided view of the (padded) input,
``(N, C, H_out, W_out, kh, kw)``, with no copy for average pooling and one
gather for max pooling. Their backward passes are scatter-adds of ``dy``
into those windows, one vectorised slice-add per kernel offset (``kh * kw``
Python iterations, never one per pixel): average pooling spreads ``dy``
evenly over the window, max pooling routes it to the arg-max (the first
one on ties, NaN winning, as PyTorch on CPU).
"""

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..checks import check_ints
from .module import Module, check_grad_shape

__all__ = ["MaxPool2d", "AvgPool2d"]


def _pair(name, value, minimum):
    return check_ints(name, value, 2, minimum)


class _Pool2d(Module):
    """Window geometry shared by the 2-D poolings."""

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size = _pair("kernel_size", kernel_size, 1)
        self.stride = self.kernel_size if stride is None else _pair("stride", stride, 1)
        self.padding = _pair("padding", padding, 0)
        if any(2 * p > k for p, k in zip(self.padding, self.kernel_size)):
            raise ValueError(f"padding={padding!r} must be at most half of kernel_size={kernel_size!r}")

    def _output_size(self, x):
        if x.ndim != 4:
            raise ValueError(f"{type(self).__name__} expects x of shape (N, C, H, W), but got {x.shape}")
        size = tuple((n + 2 * p - k) // s + 1 for n, p, k, s in zip(x.shape[2:], self.padding, self.kernel_size,
                                                                   self.stride))
        if min(size) < 1:
            raise ValueError(f"{type(self).__name__}: input {x.shape[2:]} with padding {self.padding} is smaller "
                             f"than kernel_size {self.kernel_size}")
        return size

    def _pad(self, x, fill):
        (ph, pw) = self.padding
        if ph == pw == 0:
            return x
        return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=fill)

    def _windows(self, xp, out_size):
        """``(N, C, H_out, W_out, kh, kw)`` strided view of the windows of ``xp``."""
        view = sliding_window_view(xp, self.kernel_size, axis=(2, 3))
        (sh, sw), (oh, ow) = self.stride, out_size
        return view[:, :, : sh * (oh - 1) + 1 : sh, : sw * (ow - 1) + 1 : sw]

    def _offset_slices(self, out_size):
        """Yield ``(i, j, slices)``: the padded-input positions kernel offset ``(i, j)`` reads."""
        (sh, sw), (oh, ow) = self.stride, out_size
        for i in range(self.kernel_size[0]):
            for j in range(self.kernel_size[1]):
                yield i, j, (Ellipsis, slice(i, i + sh * (oh - 1) + 1, sh), slice(j, j + sw * (ow - 1) + 1, sw))

    def _crop(self, dxp):
        (ph, pw) = self.padding
        return dxp[:, :, ph : dxp.shape[2] - ph, pw : dxp.shape[3] - pw]

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxPool2d(_Pool2d):
    """Maximum over each window, as ``torch.nn.MaxPool2d`` (no dilation, floor mode).

    Parameters
    ----------
    kernel_size : int or (int, int)
    stride : int or (int, int), default ``kernel_size``
    padding : int or (int, int), default 0
        Implicit ``-inf`` padding, at most half the kernel.

    Examples
    --------
    >>> pool = MaxPool2d(2)
    >>> x = np.arange(16.0).reshape(1, 1, 4, 4)
    >>> pool(x)[0, 0]
    array([[ 5.,  7.],
           [13., 15.]])
    >>> pool.backward(np.ones((1, 1, 2, 2)))[0, 0]
    array([[0., 0., 0., 0.],
           [0., 1., 0., 1.],
           [0., 0., 0., 0.],
           [0., 1., 0., 1.]])
    """

    def forward(self, x):
        x = np.asarray(x)
        out_size = self._output_size(x)
        xp = self._pad(x, -np.inf)
        windows = self._windows(xp, out_size)
        flat = windows.reshape(*windows.shape[:4], -1)  # one gather: (N, C, H_out, W_out, kh*kw)
        argmax = flat.argmax(axis=-1)
        self._save(argmax, xp.shape, x.dtype)
        return np.take_along_axis(flat, argmax[..., None], axis=-1)[..., 0]

    def backward(self, grad_y):
        argmax, padded_shape, dtype = self._saved_for_backward()
        grad_y = check_grad_shape(self, grad_y, argmax.shape)
        dxp = np.zeros(padded_shape, np.result_type(grad_y, dtype))
        kw = self.kernel_size[1]
        for i, j, window in self._offset_slices(argmax.shape[2:]):
            dxp[window] += np.where(argmax == i * kw + j, grad_y, 0)
        return self._crop(dxp)


class AvgPool2d(_Pool2d):
    """Mean over each window, as ``torch.nn.AvgPool2d`` (floor mode).

    Parameters
    ----------
    kernel_size : int or (int, int)
    stride : int or (int, int), default ``kernel_size``
    padding : int or (int, int), default 0
        Implicit zero padding, at most half the kernel.
    count_include_pad : bool, default True
        Divide by the full window size; otherwise by the number of
        non-padding elements in the window.

    Examples
    --------
    >>> pool = AvgPool2d(2)
    >>> pool(np.arange(16.0).reshape(1, 1, 4, 4))[0, 0]
    array([[ 2.5,  4.5],
           [10.5, 12.5]])
    """

    def __init__(self, kernel_size, stride=None, padding=0, count_include_pad=True):
        super().__init__(kernel_size, stride, padding)
        self.count_include_pad = bool(count_include_pad)

    def _divisor(self, x_shape, out_size):
        """Elements averaged per window: a scalar, or ``(H_out, W_out)`` when padding is excluded."""
        if self.count_include_pad or self.padding == (0, 0):
            return float(np.prod(self.kernel_size))
        inside = self._pad(np.ones((1, 1, *x_shape[2:])), 0.0)
        return self._windows(inside, out_size).sum(axis=(-2, -1))[0, 0]

    def forward(self, x):
        x = np.asarray(x)
        out_size = self._output_size(x)
        xp = self._pad(x, 0)
        divisor = self._divisor(x.shape, out_size)
        self._save(x.shape, xp.shape, divisor)
        y = self._windows(xp, out_size).sum(axis=(-2, -1)) / divisor
        return y.astype(np.result_type(x.dtype, np.float32), copy=False)

    def backward(self, grad_y):
        x_shape, padded_shape, divisor = self._saved_for_backward()
        out_size = tuple(
            (n + 2 * p - k) // s + 1 for n, p, k, s in zip(x_shape[2:], self.padding, self.kernel_size, self.stride))
        grad_y = check_grad_shape(self, grad_y, (*x_shape[:2], *out_size))
        share = (grad_y / divisor).astype(grad_y.dtype, copy=False)
        dxp = np.zeros(padded_shape, grad_y.dtype)
        for _, _, window in self._offset_slices(out_size):
            dxp[window] += share
        return self._crop(dxp)

    def extra_repr(self):
        return super().extra_repr() + ("" if self.count_include_pad else ", count_include_pad=False")
