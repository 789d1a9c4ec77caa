"""The command line: every subcommand has help, bad input gives a one-line error and exit code 2."""

import pytest

from convlab.cli import SUBCOMMANDS, main


def test_help_lists_every_subcommand(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert all(name in out for name in SUBCOMMANDS)


@pytest.mark.parametrize("name", sorted(SUBCOMMANDS))
def test_each_subcommand_has_help(name, capsys):
    with pytest.raises(SystemExit):
        main([name, "--help"])
    assert "usage: convlab " + name in capsys.readouterr().out


@pytest.mark.parametrize("argv, words", [
    (["report", "--suite", "nosuch"], ["convlab report: error:", "'nosuch'", "quick"]),
    (["compare", "--shape", "2,3"], ["convlab compare: error:", "(2, 3)", "3, 4 or 5"]),
    (["compare", "--shape", "1,1,8", "--kernel", "9", "--padding", "0"], ["kernel size 9", "padded input size 8"]),
])
def test_bad_input_is_one_line_and_exit_code_2(argv, words, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and all(word in err for word in words), err


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().out
