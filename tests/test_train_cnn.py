"""``convlab train-cnn``: a short run learns, the outputs are written, --compare-methods agrees."""

import json

import pytest

import convlab as cl
from convlab.algorithms import Method, register, unregister
from convlab.cli import main
from convlab.train_cnn import build_model, load_data, train
from tests.mnist_files import write_mnist


def test_a_short_run_learns_well_above_chance():
    """Three epochs on the digits: chance is 10 %, the full default run reaches 98 %."""
    data = load_data(seed=0)
    model = build_model(8, seed=0)
    history = train(model, data, epochs=3, batch_size=32, lr=3e-3, seed=0, log=None)
    assert history[-1]["test_acc"] > 0.75
    assert history[-1]["loss"] < 0.5 * history[0]["loss"]


def test_the_same_seed_gives_the_same_run():
    data = load_data(seed=3, limit=200)
    runs = [train(build_model(8, method="direct", seed=3), data, epochs=2, batch_size=50, lr=3e-3, seed=3, log=None)
            for _ in range(2)]
    assert [r["loss"] for r in runs[0]] == [r["loss"] for r in runs[1]]


def test_cli_prints_progress_and_writes_curves_and_metrics(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["train-cnn", "--epochs", "2", "--limit", "300", "--method", "direct", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "epoch   1/2  loss" in text and "test acc" in text and "s/epoch" in text
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["conv_methods"] == ["direct"] and len(metrics["history"]) == 2
    assert 0 <= metrics["final_test_acc"] <= 1 and metrics["seconds_per_epoch"] > 0
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_trains_on_mnist_idx_files(tmp_path, capsys):
    write_mnist(tmp_path, n_train=40, n_test=10, size=12, gz=("train_images", "train_labels"))
    assert main(["train-cnn", "--mnist", str(tmp_path), "--epochs", "1", "--out", str(tmp_path / "out")]) == 0
    assert "40 train / 10 test images (12, 12)" in capsys.readouterr().out


class _NeverSupported(Method):
    name, domain = "test-never-supported", "spatial"

    def unsupported_reason(self, spec):
        return "it exists only to be skipped"

    def forward(self, spec, x, w):
        raise AssertionError("never supported, so never run")

    backward_input = backward_weight = forward

    def cost(self, spec, terms):
        return 0.0


def test_compare_methods_trains_every_method_and_skips_with_a_reason(tmp_path, capsys):
    register(_NeverSupported)
    try:
        names = cl.methods()
        out = tmp_path / "cmp"
        assert main(["train-cnn", "--compare-methods", "--epochs", "2", "--limit", "120", "--batch-size", "40",
                     "--dtype", "float64", "--out", str(out)]) == 0
    finally:
        unregister(_NeverSupported.name)
    text = capsys.readouterr().out
    result = json.loads((out / "compare-methods.json").read_text())
    assert set(result["summary"]) | set(result["skipped"]) == set(names)
    assert "direct" in result["summary"]
    assert result["skipped"][_NeverSupported.name].endswith("it exists only to be skipped")
    assert f"--- {_NeverSupported.name}: skipped, it cannot run this network" in text
    assert "max deviation between loss curves" in text
    # the same model computed several ways: float64 loss curves agree to rounding
    for name, s in result["summary"].items():
        assert s["max_rel_deviation"] < 1e-8, name
    assert (out / "compare-methods.png").stat().st_size > 0


@pytest.mark.parametrize("argv, match", [
    (["--compare-methods", "--method", "direct"], "do not also pass --method"),
    (["--epochs", "0"], "--epochs must be >= 1"),
    (["--method", "no-such-method", "--limit", "50"], "method must be one of"),
])
def test_cli_rejects_bad_arguments(argv, match, tmp_path, capsys):
    try:
        code = main(["train-cnn", *argv, "--out", str(tmp_path)])
    except SystemExit as exc:  # argparse's own usage errors
        code = exc.code
    assert code == 2
    assert match in capsys.readouterr().err
