"""Peers: what a reader would otherwise call, measured on the same cases.

=====================  ==============================================  =========================
name                   call                                            runs
=====================  ==============================================  =========================
``scipy.correlate2d``  :func:`scipy.signal.correlate2d` (``valid``)    2-D, one channel
``scipy.fftconvolve``  :func:`scipy.signal.fftconvolve` (flipped w)    one channel
``scipy.oaconvolve``   :func:`scipy.signal.oaconvolve` (flipped w)     one channel
``torch``              ``torch.nn.functional.conv{1,2,3}d`` on CPU,    every zero-padded case
                       backward by ``torch.nn.grad.conv*d_input`` and
                       ``conv*d_weight``
=====================  ==============================================  =========================

scipy peers receive the input already zero-padded (padding is not timed) and
have no backward pass. torch runs with as many threads as numpy's BLAS, so
both sides use the same cores; its allocations are invisible to
:mod:`tracemalloc`, so its memory is not reported.
"""

import importlib.util

import numpy as np

from ..harness import blas_threads

__all__ = ["Runner", "Unavailable", "Peer", "PEERS", "peer_names", "available_peers", "get_peer"]


class Runner:
    """What is timed: ``forward()`` and ``backward()`` (or ``None`` when there is none).

    ``backward()`` returns ``(dx, dw, ...)``. ``traced`` says whether
    :mod:`tracemalloc` sees the runner's allocations.
    """

    def __init__(self, name, kind, forward, backward=None, traced=True, workspace_bytes=None):
        self.name, self.kind = name, kind
        self.forward, self.backward = forward, backward
        self.traced, self.workspace_bytes = traced, workspace_bytes


class Unavailable(Exception):
    """A runner cannot run a case; ``status`` is ``"unsupported"`` or ``"skipped"``."""

    def __init__(self, status, reason):
        super().__init__(reason)
        self.status, self.reason = status, reason


def _padded_input(case, x):
    """``x`` zero-padded as the case asks (the plan's own padding helper)."""
    return case.plan("direct", x.dtype).zero_pad(x)


def _require_plain(case, single_channel, ndims=(1, 2, 3)):
    """Raise :class:`Unavailable` unless the case is a plain convolution this peer computes."""
    p = case.plan("direct", np.float64)
    problems = []
    if p.ndim not in ndims:
        problems.append(f"{p.ndim}-D")
    if single_channel and (p.batch, p.in_channels, p.out_channels) != (1, 1, 1):
        problems.append(f"batch×channels {p.batch}×{p.in_channels}→{p.out_channels} (needs 1×1→1)")
    if single_channel:  # scipy computes plain full-resolution correlations only
        problems += [f"{key}={getattr(p, key)}" for key in ("stride", "dilation")
                     if any(v != 1 for v in getattr(p, key))]
        problems += [f"groups={p.groups}"] * (p.groups != 1)
    if p.padding_mode != "zeros":
        problems.append(f"padding_mode={p.padding_mode!r}")
    if problems:
        raise Unavailable("unsupported", "cannot run " + ", ".join(problems))
    return p


class Peer:
    """A peer implementation: ``runner(case, dtype, x, w, grad_y)`` builds its :class:`Runner`."""

    name = None
    module = None

    def available(self):
        return importlib.util.find_spec(self.module) is not None

    def runner(self, case, dtype, x, w, grad_y):
        raise NotImplementedError


class _ScipyPeer(Peer):
    module = "scipy.signal"
    ndims = (1, 2, 3)

    def call(self, xp, w):
        raise NotImplementedError

    def runner(self, case, dtype, x, w, grad_y):
        import scipy.signal  # noqa: F401  (imported here, not inside the first, memory-traced call)

        p = _require_plain(case, single_channel=True, ndims=self.ndims)
        xp = _padded_input(case, x.astype(dtype))[0, 0]
        w0 = w.astype(dtype)[0, 0]
        shape = p.output_shape
        return Runner(self.name, "peer", lambda: self.call(xp, w0).reshape(shape))


class Correlate2d(_ScipyPeer):
    name = "scipy.correlate2d"
    ndims = (2,)

    def call(self, xp, w):
        from scipy.signal import correlate2d

        return correlate2d(xp, w, mode="valid")


class FFTConvolve(_ScipyPeer):
    name = "scipy.fftconvolve"

    def call(self, xp, w):
        from scipy.signal import fftconvolve

        # convlab computes a correlation: a convolution with the flipped kernel
        return fftconvolve(xp, w[(slice(None, None, -1),) * w.ndim], mode="valid")


class OAConvolve(_ScipyPeer):
    name = "scipy.oaconvolve"

    def call(self, xp, w):
        from scipy.signal import oaconvolve

        return oaconvolve(xp, w[(slice(None, None, -1),) * w.ndim], mode="valid")


class Torch(Peer):
    name = "torch"
    module = "torch"

    def runner(self, case, dtype, x, w, grad_y):
        import torch
        import torch.nn.functional as F

        p = _require_plain(case, single_channel=False)
        threads = blas_threads()
        if threads:
            torch.set_num_threads(threads)
        symmetric = all(lo == hi for lo, hi in p.padding)
        xt = torch.from_numpy(np.ascontiguousarray(x.astype(dtype) if symmetric
                                                   else _padded_input(case, x.astype(dtype))))
        wt, gt = torch.from_numpy(w.astype(dtype)), torch.from_numpy(grad_y.astype(dtype))
        kwargs = dict(stride=p.stride, dilation=p.dilation, groups=p.groups,
                      padding=tuple(lo for lo, _ in p.padding) if symmetric else 0)
        conv = getattr(F, f"conv{p.ndim}d")
        grad_input = getattr(torch.nn.grad, f"conv{p.ndim}d_input")
        grad_weight = getattr(torch.nn.grad, f"conv{p.ndim}d_weight")

        def forward():
            with torch.no_grad():
                return conv(xt, wt, **kwargs).numpy()

        def backward():
            with torch.no_grad():
                dx = grad_input(xt.shape, wt, gt, **kwargs)
                dw = grad_weight(xt, wt.shape, gt, **kwargs)
            dx = dx.numpy()
            return (dx if symmetric else p.crop_padding(dx)), dw.numpy()

        return Runner(self.name, "peer", forward, backward, traced=False)


PEERS = {peer.name: peer for peer in (Correlate2d(), FFTConvolve(), OAConvolve(), Torch())}


def peer_names():
    """Names of every known peer, importable or not.

    Examples
    --------
    >>> peer_names()
    ('scipy.correlate2d', 'scipy.fftconvolve', 'scipy.oaconvolve', 'torch')
    """
    return tuple(PEERS)


def available_peers():
    """Names of the peers whose library is importable here.

    Returns
    -------
    tuple of str
        A subset of :func:`peer_names`, in the same order.

    Examples
    --------
    >>> set(available_peers()) <= set(peer_names())
    True
    >>> "scipy.fftconvolve" in available_peers()  # scipy is a dependency of convlab
    True
    """
    return tuple(name for name, peer in PEERS.items() if peer.available())


def get_peer(name):
    try:
        return PEERS[name]
    except KeyError:
        raise ValueError(f"peer must be one of {peer_names()}, but got {name!r}") from None
