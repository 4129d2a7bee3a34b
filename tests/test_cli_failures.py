"""The command line's net: a file or database failure no command foresaw is one line with a fix, never a traceback."""

from __future__ import annotations

import argparse
import errno
import sqlite3

import pytest

from kard import __main__ as cli
from kard.cli.failures import explain


@pytest.mark.parametrize("error, says", [
    (PermissionError(errno.EACCES, "Permission denied", "out/x.jsonl"), "permission denied for out/x.jsonl. Fix:"),
    (FileExistsError(errno.EEXIST, "File exists", "runs/eval"), "runs/eval is in the way"),
    (NotADirectoryError(errno.ENOTDIR, "Not a directory", "a.txt/x"), "a.txt/x is in the way"),
    (IsADirectoryError(errno.EISDIR, "Is a directory", "data"), "data is a folder where a file is needed"),
    (FileNotFoundError(errno.ENOENT, "No such file", "missing.json"), "missing.json does not exist. Fix:"),
    (OSError(errno.ENOSPC, "No space left on device", "big.bin"), "the disk is full (writing big.bin)"),
    (ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"), "a connection failed"),
    (TimeoutError("timed out"), "an operation timed out"),
    (sqlite3.OperationalError("database is locked"), "a database is busy (database is locked)"),
    (sqlite3.OperationalError("attempt to write a readonly database"), "a database is read-only"),
    (sqlite3.DatabaseError("file is not a database"), "a database could not be used (file is not a database)"),
])
def test_each_failure_names_the_problem_and_a_fix(error, says):
    message = explain(error)
    assert says in message and "Fix: " in message


def test_other_exceptions_are_bugs_and_not_explained():
    assert explain(ValueError("x")) is None and explain(KeyError("x")) is None


class _OneCommand:
    """Stands in for the parser: every argv runs `func` (the net under the commands is what is tested)."""

    def __init__(self, func):
        self.func = func

    def parse_args(self, argv):
        return argparse.Namespace(verbose=False, func=self.func)


def _raise(error: BaseException):
    def command(args):
        raise error
    return command


def test_an_unforeseen_file_failure_exits_2_with_one_line(monkeypatch, capsys):
    error = PermissionError(errno.EACCES, "Permission denied", "annotations/locked.db")
    monkeypatch.setattr(cli, "build_parser", lambda: _OneCommand(_raise(error)))
    assert cli.main(["anything"]) == 2
    assert capsys.readouterr().err == ("error: permission denied for annotations/locked.db. Fix: choose a path you "
                                       "may write to, or change its permissions\n")


def test_an_unforeseen_database_failure_exits_2_with_one_line(monkeypatch, capsys):
    monkeypatch.setattr(cli, "build_parser", lambda: _OneCommand(_raise(sqlite3.OperationalError("database is locked"))))
    assert cli.main(["anything"]) == 2
    assert capsys.readouterr().err.startswith("error: a database is busy (database is locked)")


def test_a_bug_keeps_its_traceback(monkeypatch):
    monkeypatch.setattr(cli, "build_parser", lambda: _OneCommand(_raise(ValueError("a bug"))))
    with pytest.raises(ValueError, match="a bug"):
        cli.main(["anything"])


def _main_after_ctrl_c() -> int:
    """main()'s exit code; a KeyboardInterrupt escaping it fails the test instead of stopping pytest."""
    try:
        return cli.main(["anything"])
    except KeyboardInterrupt:
        pytest.fail("Ctrl+C escaped main() (a traceback for the user)")


def test_ctrl_c_in_a_command_exits_130_with_one_line(monkeypatch, capsys):
    monkeypatch.setattr(cli, "build_parser", lambda: _OneCommand(_raise(KeyboardInterrupt())))
    assert _main_after_ctrl_c() == 130
    assert capsys.readouterr().err == "interrupted\n"


def test_ctrl_c_shows_what_the_command_says_it_kept(monkeypatch, capsys):
    said = KeyboardInterrupt("nothing was written; rerun the same command to start again")
    monkeypatch.setattr(cli, "build_parser", lambda: _OneCommand(_raise(said)))
    assert _main_after_ctrl_c() == 130
    assert capsys.readouterr().err == "interrupted: nothing was written; rerun the same command to start again\n"
