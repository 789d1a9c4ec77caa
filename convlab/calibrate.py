"""``convlab calibrate``: measure the cost model's machine constants and store them.

A thin command over :mod:`convlab.tuning.calibration`.
"""

import time

from .tuning.calibration import calibrate, check_writable, load_calibration, save_calibration, set_calibration

__all__ = ["DESCRIPTION", "add_arguments", "run"]

DESCRIPTION = """Measure this machine's constants for method="auto" and store them.

Runs for a few seconds: GEMM, copy, FFT and sparse micro-benchmarks, then each
registered method on CNN-sized and large-kernel problems. Writes calibration.json (with a machine
fingerprint and the convlab version) to the cache dir: $CONVLAB_CACHE_DIR, else
$XDG_CACHE_HOME/convlab, else ~/.cache/convlab.

example:
  convlab calibrate            # measure, store, print the constants
  convlab calibrate --show     # print what is stored, measure nothing
"""

def add_arguments(parser):
    parser.add_argument("--show", action="store_true", help="print the calibration in use; measure nothing")
    parser.add_argument("--methods", type=lambda s: s.split(","), default=None,
                        help="comma-separated methods to fit factors for (default: every registered one)")


def _print(calibration):
    print(f"source: {calibration.source}")
    for dtype, values in calibration.constants.items():
        print(f"{dtype}: peak {values['peak'] / 1e9:.1f} GFLOP/s, gemm_half {values['gemm_half']:.1f}, "
              f"gemm_call {values['gemm_call'] * 1e6:.2f} us, gather {values['gather_bandwidth'] / 1e9:.2f} GB/s, "
              f"index {values['index_point'] * 1e9:.2f} ns, bandwidth {values['bandwidth'] / 1e9:.2f} GB/s, "
              f"call {values['call'] * 1e6:.2f} us, "
              f"fft_point {values['fft_point'] * 1e9:.2f} ns, sparse_op {values['sparse_op'] * 1e9:.2f} ns")
    for name, factor in sorted(calibration.method_factors.items()):
        print(f"  factor {name:<10} {factor:.2f}")


def run(args):
    if args.show:
        _print(load_calibration())
        return 0
    path = check_writable()  # before seconds of measuring, not after
    start = time.perf_counter()
    calibration = calibrate(args.methods)  # unknown method names fail before anything is measured
    path = save_calibration(calibration, path)
    set_calibration(None)  # the next choice reloads what was just stored
    _print(load_calibration(path))
    print(f"stored in {path} ({time.perf_counter() - start:.1f} s)")
    return 0
