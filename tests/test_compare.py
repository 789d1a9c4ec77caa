"""``convlab compare``: refuses bad options before measuring, rectangular kernels, a table that fits."""

import io

import pytest

import convlab as cl
from convlab.case import Case
from convlab.cli import main
from convlab.compare import _Progress, compare, format_table

TINY = ["--shape", "1,2,8,9", "--out-channels", "2", "--repeats", "1"]


@pytest.mark.parametrize("argv, words", [
    (["--methods", "fast"], ["--methods", "'fast'", "direct"]),
    (["--methods", ","], ["--methods"]),
    (["--repeats", "0"], ["--repeats must be an int >= 1", "0"]),
    (["--shape", "a,b"], ["--shape must be comma-separated ints", "'a,b'"]),
    (["--kernel", "3y5"], ["--kernel", "'3y5'"]),
    (["--kernel", "3,5,7"], ["--kernel must give one size or 2", "'3,5,7'"]),
    (["--padding", "sane"], ["--padding", "'sane'"]),
])
def test_bad_options_exit_2_with_a_message_before_measuring(argv, words, capsys):
    assert main(["compare", *TINY, *argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # nothing measured, nothing printed
    assert "Traceback" not in captured.err and "_ints" not in captured.err
    assert captured.err.startswith("convlab compare: error:") and all(w in captured.err for w in words), captured.err


def test_rectangular_kernel_runs_and_the_table_fits_100_columns(capsys):
    assert main(["compare", *TINY, "--kernel", "3x5", "--stride", "2", "--padding", "1,2"]) == 0
    out = capsys.readouterr().out
    assert "w (2, 2, 3, 5)" in out and "padding (1, 2)" in out
    assert all(len(line) <= 100 for line in out.splitlines()), max(out.splitlines(), key=len)
    assert "winograd    cannot run" in out and "direct " in out  # winograd refuses stride 2, with its reason


def test_compare_checks_every_method_against_direct():
    rows = compare(Case((1, 2, 9, 7), (3, 2, 3, 2), "float64", padding=1), repeats=1)
    assert [r["method"] for r in rows] == list(cl.methods())
    for r in rows:
        if "error" not in r:
            assert max(r["error_y"], r["error_dx"], r["error_dw"]) <= cl.tolerances.tolerance("float64", r["method"])
            assert r["forward"].median > 0 and len(r["backward"].samples) == 1


def test_long_reasons_wrap_within_the_width():
    text = format_table([{"method": "toeplitz", "error": "needs far more memory than the limit allows " * 6}], 100)
    assert all(len(line) <= 100 for line in text.splitlines()) and len(text.splitlines()) > 3


def test_progress_only_after_a_second():
    now = [0.0]
    stream = io.StringIO()
    progress = _Progress(stream, after=1.0, clock=lambda: now[0])
    progress("checking direct")
    assert stream.getvalue() == ""
    now[0] = 1.5
    progress("timing: round 1/5")
    assert stream.getvalue() == "convlab compare: timing: round 1/5 (2 s)\n"
