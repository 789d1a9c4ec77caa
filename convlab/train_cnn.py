"""``convlab train-cnn``: train a small CNN on handwritten digits with any convolution method."""

import json
import math
import os
import time

import numpy as np

import convlab as cl

from . import nn
from .datasets import Split, load_digits, load_mnist

DESCRIPTION = """Train a small convolutional network on handwritten digits, in numpy.

The network (Conv 3x3 -> ReLU -> MaxPool -> Conv 3x3 -> ReLU -> MaxPool ->
Flatten -> Linear -> ReLU -> Linear; Adam with a cosine learning-rate
decay, softmax cross-entropy) runs its
convolutions with any registered convlab method. Data: scikit-learn's
bundled 8x8 digits (split 75/25, stratified, by --seed), or MNIST with
--mnist DIR. Prints loss, train and test accuracy and seconds per epoch;
writes curves.png and metrics.json to --out.

--compare-methods trains the same network from the same seed once per
registered method, and plots the loss curves on one figure with the
seconds per epoch of each (compare-methods.png, compare-methods.json). It
runs in float64 unless --dtype says otherwise: in float32, Adam's per-entry
normalisation amplifies the methods' different rounding (see docs/cnn.md).

examples:
  convlab train-cnn
  convlab train-cnn --method direct --epochs 5
  convlab train-cnn --compare-methods --dtype float64
  convlab train-cnn --mnist ~/data/mnist --epochs 3
"""

DEFAULTS = dict(epochs=20, batch_size=32, lr=3e-3, seed=0)
EVAL_BATCH = 500


def add_arguments(parser):
    parser.add_argument("--method", default=None,
                        help="convolution method: a name from convlab.methods() or 'auto' (default auto)")
    parser.add_argument("--epochs", type=int, default=DEFAULTS["epochs"],
                        help=f"passes over the training set (default {DEFAULTS['epochs']})")
    parser.add_argument("--batch-size", type=int, default=DEFAULTS["batch_size"],
                        help=f"images per Adam step (default {DEFAULTS['batch_size']})")
    parser.add_argument("--lr", type=float, default=DEFAULTS["lr"],
                        help=f"initial Adam learning rate, decayed to 0 along a cosine (default {DEFAULTS['lr']})")
    parser.add_argument("--seed", type=int, default=DEFAULTS["seed"],
                        help="seed of the split, the initial weights and the batch order (default 0)")
    parser.add_argument("--dtype", choices=("float32", "float64"), default=None,
                        help="dtype of weights and activations (default float32; float64 with --compare-methods, "
                             "where Adam turns float32 rounding differences into visibly different curves)")
    parser.add_argument("--out", default="cnn-out", help="directory for the figure and the JSON (default ./cnn-out)")
    parser.add_argument("--mnist", metavar="DIR", default=None,
                        help="train on MNIST from the four standard IDX files (optionally .gz) in DIR")
    parser.add_argument("--limit", type=int, default=None, metavar="N",
                        help="use only the first N training and N test images (quick runs)")
    parser.add_argument("--compare-methods", action="store_true",
                        help="train once per registered method and compare loss curves and speed")


# --------------------------------------------------------------- model and data
def build_model(image_size, n_classes=10, *, method="auto", dtype=np.float32, seed=0):
    """The example network for square ``image_size`` inputs with one channel.

    Two 3x3 convolutions (16 and 32 channels, ``padding=1``) each followed by
    ReLU and 2x2 max pooling, then a 64-unit hidden layer.

    Examples
    --------
    >>> model = build_model(8, method="direct")
    >>> model(np.zeros((2, 1, 8, 8), np.float32)).shape
    (2, 10)
    """

    rng = np.random.default_rng(seed)
    pooled = image_size // 2 // 2
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1, method=method, dtype=dtype, rng=rng), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1, method=method, dtype=dtype, rng=rng), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * pooled * pooled, 64, dtype=dtype, rng=rng), nn.ReLU(),
        nn.Linear(64, n_classes, dtype=dtype, rng=rng),
    )


def load_data(mnist=None, seed=0, limit=None, dtype=np.float32):
    """The digits (or MNIST from ``mnist``), optionally cut to ``limit`` images per split."""

    data = load_mnist(mnist, limit=limit) if mnist else load_digits(seed=seed)  # reads only `limit` images
    if limit is not None:
        data = Split(data.x_train[:limit], data.y_train[:limit], data.x_test[:limit], data.y_test[:limit])
    return Split(data.x_train.astype(dtype), data.y_train, data.x_test.astype(dtype), data.y_test)


# --------------------------------------------------------------- training
def evaluate(model, x, y, batch_size=EVAL_BATCH):
    """Accuracy of ``model`` on ``(x, y)``, in evaluation mode (keeps no state for backward)."""
    model.eval()
    try:
        correct = sum(int((model(x[i:i + batch_size]).argmax(axis=1) == y[i:i + batch_size]).sum())
                      for i in range(0, len(x), batch_size))
    finally:
        model.train()
    return correct / len(x)


def cosine_lr(lr, epoch, epochs):
    """Learning rate of ``epoch`` (0-based): ``lr`` decayed to 0 along half a cosine over ``epochs``.

    Examples
    --------
    >>> [round(cosine_lr(1.0, e, 4), 3) for e in range(4)]
    [1.0, 0.854, 0.5, 0.146]
    """
    return lr * 0.5 * (1 + math.cos(math.pi * epoch / epochs))


def train(model, data, *, epochs, batch_size, lr, seed=0, log=print):
    """Train ``model`` with Adam on ``data``; return one dict per epoch.

    The learning rate follows :func:`cosine_lr`; the batch order is drawn
    from ``seed``, so the same seed and model give the same run whatever
    the convolution method.

    Each dict has ``epoch``, ``loss`` (mean over the epoch's batches),
    ``train_acc`` (over the epoch's batches, as they were seen while
    training), ``test_acc`` (after the epoch) and ``seconds`` (the training
    pass: forward, backward and update; not the evaluation).
    """

    loss_fn, opt = nn.CrossEntropyLoss(), nn.Adam(model.parameters(), lr=lr)
    order_rng = np.random.default_rng(seed + 1)
    n, history = len(data.x_train), []
    for epoch in range(1, epochs + 1):
        opt.lr = cosine_lr(lr, epoch - 1, epochs)
        start, loss_sum, correct = time.perf_counter(), 0.0, 0
        for idx in np.array_split(order_rng.permutation(n), range(batch_size, n, batch_size)):
            xb, yb = data.x_train[idx], data.y_train[idx]
            logits = model(xb)
            loss_sum += loss_fn(logits, yb) * len(idx)
            correct += int((logits.argmax(axis=1) == yb).sum())
            model.backward(loss_fn.backward())
            opt.step()
        seconds = time.perf_counter() - start
        row = dict(epoch=epoch, loss=loss_sum / n, train_acc=correct / n,
                   test_acc=evaluate(model, data.x_test, data.y_test), seconds=seconds)
        history.append(row)
        if log:
            log(f"epoch {epoch:>3}/{epochs}  loss {row['loss']:.4f}  train acc {row['train_acc']:6.2%}  "
                f"test acc {row['test_acc']:6.2%}  {seconds:6.2f} s/epoch")
    return history


def unsupported_reason(model, data, batch_size):
    """Why ``model``'s convolution method cannot run this training, or ``None``.

    Builds the plan of every convolution layer for every batch shape the run
    will see, by a forward pass on zeros in evaluation mode.
    """

    n_train, n_test = len(data.x_train), len(data.x_test)
    sizes = {min(batch_size, n_train), n_train % batch_size or batch_size, min(EVAL_BATCH, n_test),
             n_test % EVAL_BATCH or EVAL_BATCH}
    model.eval()
    try:
        for size in sorted(sizes):
            model(np.zeros((size, *data.x_train.shape[1:]), data.x_train.dtype))
    except (cl.ConvError, MemoryError) as exc:
        return str(exc)
    finally:
        model.train()
    return None


# --------------------------------------------------------------- figures
def plot_curves(history, path, title):
    """Loss and train/test accuracy per epoch, saved to ``path``."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    epochs = [r["epoch"] for r in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(9, 3.6), layout="constrained")
    ax_loss.plot(epochs, [r["loss"] for r in history], "o-")
    ax_loss.set(xlabel="epoch", ylabel="training loss (cross-entropy)", yscale="log", title="loss")
    ax_acc.plot(epochs, [100 * r["train_acc"] for r in history], "o-", label="train (during epoch)")
    ax_acc.plot(epochs, [100 * r["test_acc"] for r in history], "s-", label="test")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    ax_acc.legend()
    for ax in (ax_loss, ax_acc):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle(title)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_comparison(results, path, title, dtype):
    """Loss curves of every method on one axes, their distance to the first, and seconds per epoch."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    names = list(results)
    ref = np.array([r["loss"] for r in results[names[0]]])
    fig, (ax_loss, ax_dev, ax_time) = plt.subplots(1, 3, figsize=(13, 3.8), layout="constrained")
    styles = ["-", "--", ":", "-.", (0, (5, 1)), (0, (1, 3))]
    for i, name in enumerate(names):
        loss = np.array([r["loss"] for r in results[name]])
        epochs = np.arange(1, len(loss) + 1)
        ax_loss.plot(epochs, loss, linestyle=styles[i % len(styles)], marker="o", markersize=7 - i,
                     linewidth=2.5 - 0.3 * i, label=name)
        if i:
            dev = np.abs(loss - ref) / ref
            dev[dev == 0] = np.nan  # identical losses have no place on a log axis
            ax_dev.semilogy(epochs, dev, marker="o", color=f"C{i}", label=name)
    ax_loss.set(xlabel="epoch", ylabel="training loss", yscale="log", title="training loss per epoch")
    ax_loss.legend()
    for ax in (ax_loss, ax_dev):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_dev.axhline(np.finfo(dtype).eps / 2, color="gray", linestyle=":", label=f"{np.dtype(dtype)} unit roundoff")
    ax_dev.set(xlabel="epoch", ylabel=f"|loss - loss[{names[0]}]| / loss[{names[0]}]",
               title=f"distance to {names[0]}", yscale="log")
    # below the panel: inside, the legend covered the deviation curves it labels
    ax_dev.legend(fontsize="small", ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.18))
    seconds = [float(np.median([r["seconds"] for r in results[n]])) for n in names]
    ax_time.barh(names, seconds, color=[f"C{i}" for i in range(len(names))])
    ax_time.invert_yaxis()
    for y, s in enumerate(seconds):
        ax_time.text(s, y, f" {s:.2f}", va="center")
    ax_time.set(xlabel="seconds per epoch (median, training pass)", title="speed")
    ax_time.set_xlim(0, max(seconds) * 1.25)
    fig.suptitle(title)
    fig.savefig(path, dpi=120)
    plt.close(fig)


# --------------------------------------------------------------- the command
def _settings(args):
    return dict(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed, dtype=args.dtype,
                data=f"mnist:{args.mnist}" if args.mnist else "sklearn-digits", limit=args.limit)


def _check_args(args):
    for name in ("epochs", "batch_size"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, but got {getattr(args, name)}")
    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be >= 1, but got {args.limit}")
    if args.compare_methods and args.method is not None:
        raise ValueError("--compare-methods trains every registered method; do not also pass --method")


def _run_one(args, data, image_size):
    model = build_model(image_size, method=args.method or "auto", dtype=args.dtype, seed=args.seed)
    reason = unsupported_reason(model, data, args.batch_size)
    if reason is not None:
        raise ValueError(f"method {args.method!r} cannot train this network: {reason}")
    methods_used = sorted({p.method for layer in model for p in getattr(layer, "plans", ())})
    print(f"{len(data.x_train)} train / {len(data.x_test)} test images {data.x_train.shape[2:]}, "
          f"method {args.method or 'auto'} ({', '.join(methods_used)}), {args.dtype}")
    start = time.perf_counter()
    history = train(model, data, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed)
    total = time.perf_counter() - start
    final = history[-1]
    metrics = dict(settings=_settings(args), method=args.method or "auto", conv_methods=methods_used,
                   final_loss=final["loss"], final_train_acc=final["train_acc"], final_test_acc=final["test_acc"],
                   seconds_per_epoch=float(np.median([r["seconds"] for r in history])),
                   total_seconds=total, history=history)
    os.makedirs(args.out, exist_ok=True)
    plot_curves(history, os.path.join(args.out, "curves.png"),
                f"convlab CNN, method={args.method or 'auto'}: test accuracy {final['test_acc']:.2%}")
    with open(os.path.join(args.out, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2)
    print(f"test accuracy {final['test_acc']:.2%} after {args.epochs} epochs, {total:.1f} s in total; "
          f"wrote {args.out}/curves.png and {args.out}/metrics.json")
    return 0


def _run_compare(args, data, image_size):

    results, skipped = {}, {}
    for name in cl.methods():
        model = build_model(image_size, method=name, dtype=args.dtype, seed=args.seed)
        reason = unsupported_reason(model, data, args.batch_size)
        if reason is not None:
            skipped[name] = reason
            print(f"--- {name}: skipped, it cannot run this network: {reason}")
            continue
        print(f"--- {name}")
        results[name] = train(model, data, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                              seed=args.seed)
    if not results:
        raise ValueError("no registered method can train this network")
    ref_name = next(iter(results))
    ref = np.array([r["loss"] for r in results[ref_name]])
    summary = {}
    print(f"\n{'method':<12}{'s/epoch':>9}{'final loss':>13}{'test acc':>10}{'max rel. dev. of loss':>24}")
    for name, history in results.items():
        loss = np.array([r["loss"] for r in history])
        summary[name] = dict(seconds_per_epoch=float(np.median([r["seconds"] for r in history])),
                             final_loss=float(loss[-1]), final_test_acc=history[-1]["test_acc"],
                             max_rel_deviation=float(np.max(np.abs(loss - ref) / ref)))
        s = summary[name]
        print(f"{name:<12}{s['seconds_per_epoch']:>9.3f}{s['final_loss']:>13.6f}{s['final_test_acc']:>10.2%}"
              f"{s['max_rel_deviation']:>24.2e}")
    print(f"max deviation between loss curves (relative to {ref_name}): "
          f"{max(s['max_rel_deviation'] for s in summary.values()):.2e}")
    os.makedirs(args.out, exist_ok=True)
    plot_comparison(results, os.path.join(args.out, "compare-methods.png"),
                    f"the same CNN trained with each convolution method ({args.dtype}, seed {args.seed}, "
                    f"{len(data.x_train)} training images)", args.dtype)
    with open(os.path.join(args.out, "compare-methods.json"), "w") as f:
        json.dump(dict(settings=_settings(args), reference=ref_name, summary=summary, skipped=skipped,
                       history=results), f, indent=2)
    print(f"wrote {args.out}/compare-methods.png and {args.out}/compare-methods.json")
    return 0


def run(args):
    _check_args(args)
    if args.dtype is None:
        args.dtype = "float64" if args.compare_methods else "float32"
    data = load_data(args.mnist, seed=args.seed, limit=args.limit, dtype=np.dtype(args.dtype))
    image_size = data.x_train.shape[-1]
    if data.x_train.shape[-2] != image_size:
        raise ValueError(f"the example network expects square images, but got {data.x_train.shape[2:]}")
    if args.compare_methods:
        return _run_compare(args, data, image_size)
    return _run_one(args, data, image_size)
