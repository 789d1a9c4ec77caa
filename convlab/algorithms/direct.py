"""The direct (sliding-window) method: the reference every other method is tested against.

For each kernel offset ``o`` the input window it touches is a strided slice
of the padded input, ``xp[..., o*d : o*d + s*(out-1) + 1 : s]``; the output
is the sum over offsets of that window contracted with ``w[..., o]`` over the
input channels of each group. The Python loop runs over kernel offsets only.

The backward pass uses the same windows: ``dw[..., o]`` contracts ``dy`` with
the window at ``o``, and ``dx`` scatter-adds ``w[..., o]ᵀ · dy`` back into
that window.

With few input channels per group (depthwise and thin grouped layers, ``C_in/G
< LOOP_MAX_GROUP_CHANNELS``) that contraction is too small for BLAS, and the
method runs the literal loop nest of :mod:`convlab.kernels.direct` instead:
padding fused (no padded copy), vectorised along the contiguous output axis,
threaded over bands of rows of the output planes (8×64×56² depthwise 3×3, float32, 2 threads:
about 6 ms forward as numpy passes, under 1 ms compiled on an idle machine).
With more channels per group the contraction *is* a matrix product, and
hand-written loops lose to BLAS (16→32 channels, 32² 3×3: 24 ms against 2.3;
crossover at 4 channels per group, measured), so there the per-offset GEMMs
stay: the one place this method keeps two code paths.
"""

import itertools
import math

import numpy as np

from ..phases import phase
from ..threads import get_num_threads
from .base import Method, register

__all__ = ["LOOP_MAX_GROUP_CHANNELS", "Direct"]

LOOP_MAX_GROUP_CHANNELS = 4
"""Below this many input channels per group the compiled loop nest runs; from it on, per-offset GEMMs."""
# The loop nest is vectorised along a plane (a dtype's SIMD width sets its speed, as it sets the GEMM
# peak) but not blocked across channels, so it runs at a fraction of the GEMM peak: its arithmetic is
# priced at ``loop_peak_fraction · peak`` (a fitted constant of the cost terms; measured 17-40 GFLOP/s
# single-threaded in float32 on depthwise layers, 22 GFLOP/s on a 512² float64 image with a 31² kernel at
# 2 threads, on the idle 2-core machine), and each call pays one kernel launch (or call, when serial).


def _windows(plan):
    """Yield ``(kernel_offset, slices)``: the padded-input window each kernel offset reads."""
    for offset in itertools.product(*(range(k) for k in plan.kernel_size)):
        spatial = tuple(
            slice(o * dil, o * dil + s * (n - 1) + 1, s)
            for o, dil, s, n in zip(offset, plan.dilation, plan.stride, plan.output_size)
        )
        yield offset, (slice(None), slice(None)) + spatial


def _uses_loops(plan):
    """Few channels per group: the per-offset contraction is too small for BLAS."""
    return plan.in_channels // plan.groups < LOOP_MAX_GROUP_CHANNELS


def _padding_lo(plan):
    return tuple(lo for lo, _ in plan.padding)


def _grouped(a, groups):
    """``(N, C, *spatial)`` -> ``(N, G, C/G, prod(spatial))``."""
    n, c = a.shape[:2]
    return a.reshape(n, groups, c // groups, -1)


@register
class Direct(Method):
    """Sliding-window convolution, vectorised over batch, channels and output positions."""

    name = "direct"
    domain = "spatial"
    exact_sums = True  # sums of products of input values only: exact on integers below 2**53

    def cost(self, spec, terms, pass_="forward"):
        return predicted_cost(spec, terms, pass_)

    def needs_compiled_kernels(self, spec, pass_="forward"):
        return _uses_loops(spec)  # else per-offset BLAS products

    def workspace_bytes(self, plan):
        if _uses_loops(plan):
            # padding fused and sums accumulated in the output: at most a C-contiguous copy of the input
            return plan.batch * plan.in_channels * math.prod(plan.input_size) * plan.dtype.itemsize
        padded = plan.batch * plan.in_channels * math.prod(plan.padded_size)
        window = plan.batch * plan.in_channels * math.prod(plan.output_size)
        return (padded + window) * plan.dtype.itemsize

    def forward(self, plan, x, w):
        if _uses_loops(plan):
            from ..kernels import direct as kernels  # numba: imported on first use, never at import convlab

            lo = _padding_lo(plan)
            if not np.isfinite(w).all():
                # IEEE semantics of the padded sum: a non-finite weight times a padded zero is NaN,
                # so the padding is materialised instead of skipped (the FFT methods match this).
                with phase("pad"):
                    x, lo = plan.zero_pad(x), (0,) * plan.ndim
            with phase("product"):
                return kernels.forward(x, w, plan.output_size, plan.stride, plan.dilation, lo)
        with phase("pad"):
            xp = plan.zero_pad(x)
        g = plan.groups
        with phase("product"):
            y = np.zeros((plan.batch, g, plan.out_channels // g, math.prod(plan.output_size)), plan.dtype)
            wg = w.reshape(g, plan.out_channels // g, plan.in_channels // g, *plan.kernel_size)
            for offset, window in _windows(plan):
                y += wg[(...,) + offset] @ _grouped(xp[window], g)
        return y.reshape(plan.output_shape)

    def backward_input(self, plan, grad_y, w):
        if _uses_loops(plan):
            from ..kernels import direct as kernels  # numba: imported on first use, never at import convlab

            with phase("product"):
                return kernels.backward_input(grad_y, w, plan.input_size, plan.groups, plan.stride,
                                              plan.dilation, _padding_lo(plan))
        g = plan.groups
        with phase("product"):
            dxp = np.zeros((plan.batch, plan.in_channels, *plan.padded_size), plan.dtype)
            dyg = _grouped(grad_y, g)
            wg = w.reshape(g, plan.out_channels // g, plan.in_channels // g, *plan.kernel_size)
            window_shape = (plan.batch, plan.in_channels, *plan.output_size)
            for offset, window in _windows(plan):
                contribution = np.swapaxes(wg[(...,) + offset], -1, -2) @ dyg
                dxp[window] += contribution.reshape(window_shape)
        return plan.crop_padding(dxp)  # a view: nothing to time

    def backward_weight(self, plan, grad_y, x):
        if _uses_loops(plan):
            from ..kernels import direct as kernels  # numba: imported on first use, never at import convlab

            lo = _padding_lo(plan)
            if not np.isfinite(grad_y).all():  # as in forward: padded zeros times non-finite values are NaN
                with phase("pad"):
                    x, lo = plan.zero_pad(x), (0,) * plan.ndim
            with phase("product"):
                return kernels.backward_weight(grad_y, x, plan.kernel_size, plan.groups, plan.stride,
                                               plan.dilation, lo)
        with phase("pad"):
            xp = plan.zero_pad(x)
        g = plan.groups
        with phase("product"):
            dyg = _grouped(grad_y, g)
            dw = np.zeros((g, plan.out_channels // g, plan.in_channels // g, *plan.kernel_size), plan.dtype)
            for offset, window in _windows(plan):
                xg = _grouped(xp[window], g)
                # sum over batch and positions of dy[n,g,o,p] * x[n,g,c,p]
                dw[(...,) + offset] = (dyg @ np.swapaxes(xg, -1, -2)).sum(axis=0)
        return dw.reshape(plan.w_shape)


def _loop_tasks(spec, pass_):
    """The parallel tasks of the loop nest's pass (:mod:`convlab.kernels.direct`): input planes ``(n, c)``
    for ``dx``, ``(o, c)`` pairs for ``dw``; for ``y``, output planes ``(n, o, depth)``, each cut into
    bands of rows so that every thread gets one when there are fewer planes than threads (the kernel's
    ``_band``: one huge image runs on every core)."""
    if pass_ == "backward_input":
        return spec.batch * spec.in_channels
    if pass_ == "backward_weight":
        return spec.out_channels * (spec.in_channels // spec.groups)
    depth = spec.output_size[0] if spec.ndim == 3 else 1
    planes = spec.batch * spec.out_channels * depth
    threads = get_num_threads()
    rows = spec.output_size[-2] if spec.ndim >= 2 else 1  # 1-D planes are one row
    return planes if planes >= threads else planes * min(rows, -(-threads // planes))


def predicted_cost(spec, terms, pass_="forward"):
    """``{phase: seconds}`` of one pass.

    Few channels per group: the compiled loop nest (one kernel launch), one read of its inputs and one
    write of its output, its arithmetic at ``loop_peak_fraction`` of the GEMM peak on the threads its
    tasks keep busy (:meth:`~convlab.algorithms.CostTerms.thread_share`: ``dx`` of a single image plane
    runs on one), and
    for ``y`` and ``dw`` the finiteness check of the weights (or ``dy``) that decides whether the
    padding can be skipped (the three passes run the same loop nest with the roles of x, w and y
    exchanged). Otherwise, per kernel offset: a window gather (or, for ``dx``, a scatter-add into the
    window), one batched matmul call of ``N·G`` GEMMs, and for the forward the accumulation
    ``y += product``; ``dw``'s product ``dy · windowᵀ`` is summed over the batch and written
    into one strided tap of ``dw``. The two paths differ in kind (a compiled loop against BLAS),
    so the loop's speed is its own constant: the method's factor, fitted over both, then
    describes its GEMM path, not an average of the two.
    """
    cg, kg = spec.in_channels // spec.groups, spec.out_channels // spec.groups
    y = math.prod(spec.output_shape)
    x = spec.batch * spec.in_channels * math.prod(spec.input_size)
    if _uses_loops(spec):
        # the loop nest is threaded over planes (_loop_tasks): one huge image is one task on one thread
        share = terms.thread_share(_loop_tasks(spec, pass_), spec.flops)
        arithmetic = share * spec.flops / (terms.loop_peak_fraction * terms.peak)
        check = {"forward": terms.passes(math.prod(spec.w_shape), 1),
                 "backward_weight": terms.passes(y, 1)}.get(pass_, 0.0)
        return {"product": terms.launches(1, spec.flops) + check + arithmetic + terms.passes(x + y, 1)}
    out = math.prod(spec.output_size)
    window = spec.batch * spec.in_channels * out
    taps = math.prod(spec.kernel_size)
    nb = spec.batch * spec.groups
    if pass_ == "backward_input":
        xp = spec.batch * spec.in_channels * math.prod(spec.padded_size)
        crop = terms.copy(x) if xp != x else 0.0
        return {"pad": terms.passes(xp, 1) + crop, "product": taps * terms.gemm(cg, kg, out, batch=nb),
                "unpack": taps * (terms.gather(window) + terms.passes(window, 1))}
    if pass_ == "backward_weight":
        dw_tap = nb * kg * cg
        return {"pad": terms.pad_copy(spec), "pack": taps * terms.gather(window),
                "product": taps * (terms.gemm(kg, out, cg, batch=nb) + terms.passes(dw_tap, 2)
                                   + terms.gather(dw_tap // spec.batch))}
    # window gather, N·G GEMMs, and y += product (write the product, read it and y, write y)
    return {"pad": terms.pad_copy(spec), "pack": taps * terms.gather(window),
            "product": terms.passes(y, 1) + taps * (terms.gemm(kg, cg, out, batch=nb) + terms.passes(y, 4))}
