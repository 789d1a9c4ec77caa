"""The priced terms every method's cost model is written in.

A method's :meth:`~convlab.algorithms.Method.cost` is a sum of a few terms,
each priced by a constant of the running machine:

======================  ===========================================================
term                    time (constants in brackets)
======================  ===========================================================
``b`` GEMMs ``m×k×n``   ``blas_call + b·gemm_call + max(2mknb / (peak·e), bytes/bandwidth)``,
                        ``e = Π_d d/(d + gemm_half)`` over ``d ∈ {m, k, n}``
``c`` passes of ``E``   ``call + c·E·itemsize / bandwidth`` (``y += a`` is 3 passes)
strided gather          ``call + 2E·itemsize / gather_bandwidth``
``np.ix_`` gather       ``call + E·index_point``
real FFTs               ``fft_call + count · P · log2 P · fft_point`` (one plan execution)
sparse product          ``sparse_call + nnz_products · sparse_op``
compiled kernel         ``launch`` per call of a parallel compiled loop, ``kernel_call`` when the
                        pass runs it serially (below ``SMALL_FLOPS`` or at one thread: its work
                        priced apart; a loop nest's arithmetic at ``loop_peak_fraction · peak``)
threads a loop keeps    ``T / (tasks / ⌈tasks/T⌉)`` times the work's time at all ``T`` threads
busy                    (``T`` when the pass runs serially): a loop threaded over ``tasks``
                        equal tasks (a single image plane is one task) leaves threads idle
======================  ===========================================================

The fixed costs are priced per call, from each method's own structure: a
method that makes two kernel launches, three BLAS calls and four FFT plan
executions for a spec and pass pays ``2·launch + 3·blas_call + 4·fft_call``
besides its arithmetic and data movement, however small the problem. On
small problems (a single-channel 32² image) those fixed costs decide the
choice, so they are counted where they arise (chunks, groups, passes), not
folded into one number per method. What no term describes (Python-level
dispatch and checks) is the small per-method, per-pass residual of
:data:`DEFAULT_OVERHEADS`.

The constants come from the tuning layer (:mod:`convlab.tuning.calibration`:
measured by ``convlab calibrate``, or the built-in defaults below).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from ..threads import SMALL_FLOPS, get_num_threads

__all__ = ["CostTerms", "DEFAULT_CONSTANTS", "DEFAULT_FACTORS", "DEFAULT_OVERHEADS", "CONSTANT_NAMES"]

#: Built-in constants, used until the first ``method="auto"`` choice measures the machine (or without it).
#: ``peak``, ``bandwidth``, ``call``, ``fft_point`` and the fixed costs per call (``blas_call``, ``fft_call``,
#: ``sparse_call``, ``launch``) are what ``measure_quick`` measures on an idle 2-core AVX2 machine with
#: OpenBLAS; the others are fitted to measured times by ``benchmarks/fit_cost_model.py``. ``kernel_call`` is
#: the fixed cost of one serial compiled-kernel call from Python (numba's dispatch on the argument types and
#: the method's preparation of its views: tens of microseconds, where a ufunc ``call`` is a fraction of one;
#: priced at ``call``, a 4×8×14² 3×3 im2col layer was predicted at a fifth of its 65 µs).
DEFAULT_CONSTANTS: dict[str, dict[str, float]] = {'float32': {'bandwidth': 51800000000.0,
             'blas_call': 9.13e-07,
             'call': 3.24e-07,
             'fft_call': 3.44e-07,
             'fft_point': 6.24e-11,
             'gather_bandwidth': 122000000000.0,
             'gemm_call': 6.84e-09,
             'gemm_half': 5.22,
             'index_point': 4.78e-10,
             'kernel_call': 5.12e-06,
             'launch': 6.92e-05,
             'loop_peak_fraction': 0.633,
             'peak': 187000000000.0,
             'sparse_call': 4.26e-06,
             'sparse_op': 1.04e-09},
 'float64': {'bandwidth': 47700000000.0,
             'blas_call': 9.33e-07,
             'call': 3.21e-07,
             'fft_call': 3.57e-07,
             'fft_point': 6.72e-11,
             'gather_bandwidth': 122000000000.0,
             'gemm_call': 6.84e-09,
             'gemm_half': 5.22,
             'index_point': 4.78e-10,
             'kernel_call': 5.12e-06,
             'launch': 6.92e-05,
             'loop_peak_fraction': 0.633,
             'peak': 106000000000.0,
             'sparse_call': 3.23e-06,
             'sparse_op': 1.22e-09}}
CONSTANT_NAMES = frozenset(DEFAULT_CONSTANTS["float32"])
#: Built-in per-method factors (measured / modelled time, fitted with the constants above); a method
#: not listed has factor 1. ``"method/backward_input"`` and ``"method/backward_weight"`` are the
#: factors of the backward passes (fitted separately, the forward's factor when absent).
#: ``convlab calibrate`` refits the forward factors for the machine it runs on.
DEFAULT_FACTORS: dict[str, float] = {'direct': 1.596,
 'direct/backward_input': 2.103,
 'direct/backward_weight': 2.376,
 'fft': 3.142,
 'fft/backward_input': 3.13,
 'fft/backward_weight': 4.003,
 'fft_tiled': 3.021,
 'fft_tiled/backward_input': 3.778,
 'fft_tiled/backward_weight': 4.274,
 'im2col': 1.813,
 'im2col/backward_input': 1.969,
 'im2col/backward_weight': 1.869,
 'toeplitz': 0.658,
 'toeplitz/backward_input': 0.522,
 'toeplitz/backward_weight': 4.486,
 'winograd': 2.572,
 'winograd/backward_input': 2.723,
 'winograd/backward_weight': 4.256}
#: Built-in per-method residual fixed seconds per pass (Python dispatch, checks, allocation: what a method
#: pays whatever the size beyond the launches and calls its model counts), fitted with the factors;
#: predicted time = factor · model + overhead. ``"method/backward_input"`` and ``"method/backward_weight"``
#: are those of the backward passes (the forward's when absent).
DEFAULT_OVERHEADS: dict[str, float] = {'direct': 2.71e-05,
 'direct/backward_input': 1.51e-05,
 'direct/backward_weight': 3.89e-05,
 'fft': 0.000108,
 'fft/backward_input': 7.78e-05,
 'fft/backward_weight': 0.000175,
 'fft_tiled': 0.000137,
 'fft_tiled/backward_input': 7.57e-05,
 'fft_tiled/backward_weight': 0.000191,
 'im2col': 2.19e-05,
 'im2col/backward_input': 1.5e-05,
 'im2col/backward_weight': 3.56e-05,
 'toeplitz': 1.58e-05,
 'toeplitz/backward_input': 5.1e-05,
 'toeplitz/backward_weight': 3.66e-05,
 'winograd': 0.000213,
 'winograd/backward_input': 0.00018,
 'winograd/backward_weight': 0.000347}


class CostTerms:
    """Prices of the cost terms for one dtype, from a mapping of the :data:`CONSTANT_NAMES`.

    Examples
    --------
    >>> t = CostTerms(DEFAULT_CONSTANTS["float32"], np.float32)
    >>> t.gemm(512, 512, 512) < t.gemm(1024, 1024, 1024)
    True
    """

    peak: float
    gemm_half: float
    gemm_call: float
    bandwidth: float
    gather_bandwidth: float
    index_point: float
    call: float
    fft_point: float
    sparse_op: float
    blas_call: float
    fft_call: float
    sparse_call: float
    launch: float
    kernel_call: float
    loop_peak_fraction: float

    def __init__(self, constants: Mapping[str, float], dtype: np.dtype | type | str) -> None:
        self.itemsize = np.dtype(dtype).itemsize
        for name in CONSTANT_NAMES:
            setattr(self, name, float(constants[name]))

    def fixed_only(self) -> CostTerms:
        """These terms with every throughput infinite (no time per FLOP, byte, point or matrix): what a
        cost model then prices is its fixed cost per call alone (calls, BLAS calls, FFT executions,
        sparse products, kernel launches). A method's calibrated factor scales the rest, never this:
        a launch costs the same whatever the method's throughput.

        Examples
        --------
        >>> t = CostTerms(DEFAULT_CONSTANTS["float64"], np.float64)
        >>> fixed = t.fixed_only()
        >>> fixed.gemm(512, 512, 512) == t.blas_call, fixed.launches(2, flops=1e3) == 2 * t.kernel_call
        (True, True)
        """
        fixed = object.__new__(CostTerms)
        fixed.__dict__.update(self.__dict__)
        for name in ("peak", "bandwidth", "gather_bandwidth"):
            setattr(fixed, name, math.inf)
        for name in ("gemm_call", "index_point", "fft_point", "sparse_op"):
            setattr(fixed, name, 0.0)
        return fixed

    def gemm(self, m: int, k: int, n: int, batch: int = 1, complex_: bool = False) -> float:
        """``batch`` GEMMs ``m×k @ k×n``: numpy's batched matmul calls BLAS once per matrix."""
        h = self.gemm_half
        efficiency = (m / (m + h)) * (k / (k + h)) * (n / (n + h))
        scale = 4 if complex_ else 1  # one complex multiply-add is four real ones
        flops = 2.0 * m * k * n * batch * scale
        moved = (m * k + k * n + m * n) * batch * self.itemsize * (2 if complex_ else 1)
        return self.blas_call + batch * self.gemm_call + max(flops / (self.peak * efficiency), moved / self.bandwidth)

    def passes(self, elements: int, count: int) -> float:
        """``count`` streaming passes (reads or writes) over ``elements`` values, e.g. ``y += a`` is 3."""
        return self.call + count * elements * self.itemsize / self.bandwidth

    def fancy(self, elements: int) -> float:
        """An integer-array (``np.ix_``) gather of ``elements`` values."""
        return self.call + elements * self.index_point

    def gather(self, elements: int) -> float:
        """A strided copy into a contiguous buffer (window or column matrix), at its measured bandwidth."""
        return self.call + 2.0 * elements * self.itemsize / self.gather_bandwidth

    def copy(self, elements: int) -> float:
        """A contiguous copy of ``elements`` values (one read, one write)."""
        return self.call + 2.0 * elements * self.itemsize / self.bandwidth

    def fft(self, count: int, shape: tuple[int, ...]) -> float:
        """``count`` real FFTs of ``shape`` points each."""
        points = float(np.prod(shape))
        return self.fft_call + count * points * max(1.0, math.log2(points)) * self.fft_point

    def sparse(self, products: int) -> float:
        """A sparse-times-dense product of ``products`` multiply-adds."""
        return self.sparse_call + products * self.sparse_op

    def launches(self, count: int = 1, flops: float = math.inf) -> float:
        """``count`` calls of a compiled kernel (numba) in a pass of ``flops``: the fixed cost of each
        call, its work priced by the other terms. A pass below :data:`~convlab.threads.SMALL_FLOPS`,
        or any pass at one thread, runs the kernel's serial twin (no parallel launch: ``kernel_call``,
        a plain call from Python); the same rule :func:`convlab.threads.call_threads` applies when the
        pass runs."""
        serial = flops < SMALL_FLOPS or get_num_threads() <= 1
        return count * (self.kernel_call if serial else self.launch)

    def thread_share(self, tasks: int, flops: float = math.inf) -> float:
        """How many times longer a compiled loop threaded over ``tasks`` equal tasks takes than its work
        spread over every thread (the peak, the bandwidth and the constants fitted with them describe
        all :func:`~convlab.threads.get_num_threads` threads at work): ``T / (tasks / ⌈tasks/T⌉)``
        with ``T`` threads, ``T`` when the pass runs serially (the rule of :meth:`launches`).

        Examples
        --------
        >>> import convlab as cl
        >>> t = CostTerms(DEFAULT_CONSTANTS["float32"], np.float32)
        >>> with cl.num_threads(2):
        ...     t.thread_share(1, flops=1e9), t.thread_share(4, flops=1e9), t.thread_share(64, flops=1e9)
        (2.0, 1.0, 1.0)
        >>> with cl.num_threads(2):  # three planes on two threads: two rounds for 1.5 planes' worth each
        ...     round(t.thread_share(3, flops=1e9), 3)
        1.333
        """
        threads = get_num_threads()
        if flops < SMALL_FLOPS or threads <= 1:
            return float(threads)
        tasks = max(int(tasks), 1)
        return threads * (-(-tasks // threads)) / tasks

    def pad_copy(self, spec) -> float:
        """The zero-padded copy of the input a spatial method makes, when there is padding."""
        x = spec.batch * spec.in_channels * math.prod(spec.input_size)
        xp = spec.batch * spec.in_channels * math.prod(spec.padded_size)
        return self.copy(xp) if xp != x else 0.0
