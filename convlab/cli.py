"""The ``convlab`` command line.

Each subcommand lives in its own module exposing ``DESCRIPTION`` (the help
text), ``add_arguments(parser)`` and ``run(args) -> int``; this file only
lists them, so the modules (and their heavier imports) load on demand.
"""

import argparse
import importlib
import os
import sys

__all__ = ["main"]

# name -> module implementing it, in the order ``convlab --help`` lists them.
SUBCOMMANDS = {
    "compare": "convlab.compare",
    "calibrate": "convlab.calibrate",
    "report": "convlab.report.cli",
    "train-cnn": "convlab.train_cnn",
}


def build_parser():
    parser = argparse.ArgumentParser(
        prog="convlab",
        description="Compare the classic ways of computing a convolution: run them, time them, "
        "check them against each other and plot when each one wins.",
    )
    from . import __version__

    parser.add_argument("--version", action="version", version=f"convlab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in SUBCOMMANDS.items():
        module = importlib.import_module(module_name)
        command = sub.add_parser(name, help=module.DESCRIPTION.splitlines()[0], description=module.DESCRIPTION,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(command)
        command.set_defaults(_run=module.run)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return args._run(args) or 0
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except (ValueError, TypeError, ImportError, OSError, MemoryError) as exc:
        # Bad input, a missing optional extra or an unreadable file: the message says what to
        # change, a traceback would only bury it. CONVLAB_DEBUG=1 shows the traceback.
        if os.environ.get("CONVLAB_DEBUG"):
            raise
        print(f"convlab {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
