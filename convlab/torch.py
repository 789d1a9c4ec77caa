"""convlab's methods inside PyTorch: autograd functions and drop-in ``Conv1d/2d/3d`` modules.

Needs the optional ``torch`` extra (``pip install -e ".[torch]"`` from the
checkout); ``import convlab`` never imports torch, only ``import convlab.torch``
does.

* :func:`conv1d`, :func:`conv2d`, :func:`conv3d`: ``torch.nn.functional``'s
  signatures plus ``padding_mode=`` and ``method=``, as
  :class:`torch.autograd.Function` s. The forward runs
  ``convlab.plan(...).forward`` and the backward ``backward_input`` /
  ``backward_weight`` on numpy views of the CPU tensors (no copies), and only
  for the inputs whose ``ctx.needs_input_grad`` is set.
* :class:`Conv1d`, :class:`Conv2d`, :class:`Conv3d`: subclasses of
  ``torch.nn.Conv1d/2d/3d`` with the same constructor, parameters and
  ``state_dict``, plus ``method=``; changing the import switches a model.

What differs from PyTorch, and why
----------------------------------
* CPU tensors of dtype float32 or float64 only (convlab computes in numpy);
  other devices and dtypes raise ``ValueError`` / ``TypeError``.
* First-order gradients only (``once_differentiable``): the backward is not
  itself recorded by autograd, so double backward raises.
* Values agree with PyTorch within :mod:`convlab.tolerances`, not bit for bit.
* The first call with new shapes plans the problem (and FFTW plans its
  transforms); later calls reuse the plan.

Examples
--------
>>> import torch, convlab.torch as clt
>>> layer = clt.Conv2d(3, 8, 5, padding=2, method="fft")
>>> isinstance(layer, torch.nn.Conv2d)
True
>>> y = layer(torch.randn(2, 3, 16, 16))
>>> y.sum().backward()
>>> y.shape, layer.weight.grad.shape
(torch.Size([2, 8, 16, 16]), torch.Size([8, 3, 5, 5]))
"""

import torch
from torch.autograd.function import once_differentiable

from .api import cached_plan

__all__ = ["Conv1d", "Conv2d", "Conv3d", "conv1d", "conv2d", "conv3d"]

_DTYPES = (torch.float32, torch.float64)


def _check_tensor(name, t):
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, but got {type(t).__name__}")
    if t.device.type != "cpu":
        raise ValueError(f"{name} is on device {t.device}; convlab.torch runs on CPU tensors only "
                         f"(move it with .cpu(), or use torch.nn.functional on {t.device.type})")
    if t.dtype not in _DTYPES:
        raise TypeError(f"{name} has dtype {t.dtype}; convlab.torch supports torch.float32 and torch.float64")


def _numpy(t):
    """A numpy view of a CPU tensor (shares memory; strided if the tensor is)."""
    return t.detach().numpy()


class _Conv(torch.autograd.Function):
    """``y = conv(x, w) + b`` with convlab's forward and backward passes."""

    @staticmethod
    def forward(ctx, x, w, b, params):
        plan = cached_plan(tuple(x.shape), tuple(w.shape), _numpy(x).dtype, **params)
        y = plan.forward(_numpy(x), _numpy(w), None if b is None else _numpy(b))
        ctx.plan = plan
        ctx.save_for_backward(x, w)
        ctx.has_bias = b is not None
        return torch.from_numpy(y)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_y):
        x, w = ctx.saved_tensors
        plan, gy = ctx.plan, _numpy(grad_y)
        need_x, need_w, need_b, _ = ctx.needs_input_grad
        dx = torch.from_numpy(plan.backward_input(gy, _numpy(w))) if need_x else None
        dw = torch.from_numpy(plan.backward_weight(gy, _numpy(x))) if need_w else None
        db = grad_y.sum(dim=(0, *range(2, grad_y.dim()))) if need_b and ctx.has_bias else None
        return dx, dw, db, None


def _conv(ndim, input, weight, bias, stride, padding, dilation, groups, padding_mode, method):
    name = f"conv{ndim}d"
    _check_tensor("input", input)
    _check_tensor("weight", weight)
    if bias is not None:
        _check_tensor("bias", bias)
    if weight.dim() != ndim + 2:
        raise ValueError(f"{name} expects weight of shape (C_out, C_in/groups, *kernel) with {ndim} kernel "
                         f"dim(s), but got shape {tuple(weight.shape)}")
    if input.dim() not in (ndim + 1, ndim + 2):
        raise ValueError(f"{name} expects input of shape (N, C_in, *spatial) or unbatched (C_in, *spatial) with "
                         f"{ndim} spatial dim(s), but got shape {tuple(input.shape)}")
    if input.dtype != weight.dtype or (bias is not None and bias.dtype != weight.dtype):
        raise TypeError(f"input ({input.dtype}), weight ({weight.dtype}) and bias must have the same dtype")
    unbatched = input.dim() == ndim + 1
    if unbatched:
        input = input.unsqueeze(0)
    params = {"stride": _tuple(stride), "padding": _tuple(padding), "dilation": _tuple(dilation), "groups": groups,
                  "padding_mode": padding_mode, "method": method}
    if input.shape[0] == 0:  # an empty batch: the shape of the result, and zero gradients through it
        plan = cached_plan((1, *input.shape[1:]), tuple(weight.shape), _numpy(weight).dtype, **params)
        y = input.new_zeros((0, *plan.output_shape[1:])) + 0 * (input.sum() + weight.sum())
        y = y + (0 * bias.sum() if bias is not None else 0)
    else:
        y = _Conv.apply(input, weight, bias, params)
    return y.squeeze(0) if unbatched else y


def _tuple(value):
    return tuple(_tuple(v) for v in value) if isinstance(value, (list, tuple)) else value


def _functional(ndim):
    def conv(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *, padding_mode="zeros",
             method="auto"):
        return _conv(ndim, input, weight, bias, stride, padding, dilation, groups, padding_mode, method)

    layout = {1: "(N, C_in, L)", 2: "(N, C_in, H, W)", 3: "(N, C_in, D, H, W)"}[ndim]
    conv.__name__ = conv.__qualname__ = f"conv{ndim}d"
    conv.__doc__ = f"""``torch.nn.functional.conv{ndim}d`` computed by a convlab method, differentiable.

    Parameters
    ----------
    input : torch.Tensor, shape {layout} or unbatched (C_in, *spatial)
        CPU, float32 or float64.
    weight : torch.Tensor, shape (C_out, C_in // groups, *kernel)
    bias : torch.Tensor, shape (C_out,), optional
    stride, padding, dilation, groups
        As in PyTorch (``padding`` also ``"same"``/``"valid"``).
    padding_mode : {{"zeros", "reflect", "replicate", "circular", "symmetric"}}, default "zeros"
    method : str, default "auto"
        ``"auto"`` or any of :func:`convlab.methods`.

    Returns
    -------
    torch.Tensor, shape (N, C_out, *output_size)

    Examples
    --------
    >>> import torch, convlab.torch as clt
    >>> x = torch.ones((1, 1) + (6,) * {ndim}, dtype=torch.float64, requires_grad=True)
    >>> w = torch.ones((2, 1) + (3,) * {ndim}, dtype=torch.float64)
    >>> y = clt.conv{ndim}d(x, w, padding="same", method="direct")
    >>> y.sum().backward()
    >>> tuple(y.shape), x.grad.shape == x.shape
    ({(1, 2) + (6,) * ndim}, True)
    """
    return conv


conv1d, conv2d, conv3d = _functional(1), _functional(2), _functional(3)


def _module(base, functional):
    class Conv(base):
        def __init__(self, *args, method="auto", **kwargs):
            super().__init__(*args, **kwargs)
            if not isinstance(method, str):
                raise TypeError(f"method must be a str, but got {method!r}")
            self.method = method

        def _conv_forward(self, input, weight, bias):
            return functional(input, weight, bias, self.stride, self.padding, self.dilation, self.groups,
                              padding_mode=self.padding_mode, method=self.method)

        def extra_repr(self):
            return f"{super().extra_repr()}, method={self.method!r}"

    Conv.__name__ = Conv.__qualname__ = base.__name__
    Conv.__module__ = __name__
    Conv.__doc__ = f"""``torch.nn.{base.__name__}`` computed by a convlab method.

    Same constructor, parameters and ``state_dict`` as ``torch.nn.{base.__name__}``
    (it is a subclass), plus ``method=`` (``"auto"`` or any of
    :func:`convlab.methods`), kept as the attribute ``method``.

    Examples
    --------
    >>> import torch, convlab.torch as clt
    >>> reference = torch.nn.{base.__name__}(2, 4, 3)
    >>> layer = clt.{base.__name__}(2, 4, 3, method="im2col")
    >>> layer.load_state_dict(reference.state_dict())
    <All keys matched successfully>
    """
    return Conv


Conv1d = _module(torch.nn.Conv1d, conv1d)
Conv2d = _module(torch.nn.Conv2d, conv2d)
Conv3d = _module(torch.nn.Conv3d, conv3d)
