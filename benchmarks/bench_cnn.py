"""The full default ``convlab train-cnn`` run: test accuracy and wall time against the target.

Target (issue 6): at least 97 % test accuracy on scikit-learn's digits with
the default settings, in under 60 s on a 2-core machine.

usage:
  python benchmarks/bench_cnn.py                 # default method ("auto")
  python benchmarks/bench_cnn.py --method im2col --threads 2
"""

import argparse
import time

from threadpoolctl import threadpool_limits

from convlab.train_cnn import DEFAULTS, build_model, load_data, train

TARGET_ACCURACY, TARGET_SECONDS = 0.97, 60.0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--method", default="auto")
    parser.add_argument("--threads", type=int, default=2, help="BLAS threads (default 2: the target machine)")
    args = parser.parse_args(argv)
    with threadpool_limits(args.threads):
        start = time.perf_counter()
        data = load_data(seed=DEFAULTS["seed"])
        model = build_model(data.x_train.shape[-1], method=args.method, seed=DEFAULTS["seed"])
        history = train(model, data, epochs=DEFAULTS["epochs"], batch_size=DEFAULTS["batch_size"],
                        lr=DEFAULTS["lr"], seed=DEFAULTS["seed"], log=None)
        total = time.perf_counter() - start
    accuracy = history[-1]["test_acc"]
    per_epoch = sorted(r["seconds"] for r in history)[len(history) // 2]
    used = sorted({p.method for layer in model for p in getattr(layer, "plans", ())})
    print(f"method {args.method} ({', '.join(used)}), {args.threads} BLAS threads, {DEFAULTS}")
    print(f"test accuracy {accuracy:.2%} (target >= {TARGET_ACCURACY:.0%}): "
          f"{'met' if accuracy >= TARGET_ACCURACY else 'NOT met'}")
    print(f"wall time {total:.1f} s including data loading and evaluation, median training pass "
          f"{per_epoch:.2f} s/epoch (target < {TARGET_SECONDS:.0f} s): "
          f"{'met' if total < TARGET_SECONDS else 'NOT met'}")
    return 0 if accuracy >= TARGET_ACCURACY else 1


if __name__ == "__main__":
    raise SystemExit(main())
