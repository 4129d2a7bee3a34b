"""The command line: `python -m kard COMMAND ...`. Each command lives in its own module under kard/cli/."""

from __future__ import annotations

import argparse
import importlib
import logging
import sqlite3
import sys

from kard.cli.failures import explain
from kard.errors import KardError

INTERRUPTED = 130
"""The exit code after Ctrl+C (128 + SIGINT), as shells report it."""

COMMAND_MODULES = [
    # Each module defines `register(subparsers)`, which adds its parser(s) with `func=run`.
    "kard.cli.knowledge",
    "kard.cli.ask",
    "kard.cli.teach",
    "kard.cli.evaluate",
    "kard.cli.loop",
    "kard.cli.train",
    "kard.cli.space",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m kard", description="KARD Studio command line")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        return _run_command(argv)
    except KeyboardInterrupt as interrupt:  # Ctrl+C: a command may say what it kept, e.g. KeyboardInterrupt("...")
        print(f"interrupted: {interrupt}" if str(interrupt) else "interrupted", file=sys.stderr)
        return INTERRUPTED


def _run_command(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except KardError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except (OSError, sqlite3.Error) as error:  # not foreseen by the command, but still about a path or database
        logging.getLogger("kard").debug("unforeseen failure", exc_info=True)
        print(f"error: {explain(error)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
