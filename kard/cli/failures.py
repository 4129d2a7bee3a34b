"""What the command line says when a file or database operation fails where no command expected it.

Commands turn the failures they foresee into `KardError`s with their own fix. This is the net under them:
an `OSError` or `sqlite3.Error` that reaches `python -m kard` is still a problem with a path the user gave
(or its disk), so it is shown as one line naming the path and a fix instead of a traceback. Anything else
is a bug and keeps its traceback.
"""

from __future__ import annotations

import errno
import sqlite3


def _path(error: OSError) -> str:
    return str(error.filename) if error.filename is not None else "a file"


def explain_os_error(error: OSError) -> str:
    if isinstance(error, ConnectionError):
        return f"a connection failed ({error}). Fix: check the server's address and that it is running"
    if isinstance(error, TimeoutError):
        return f"an operation timed out ({error}). Fix: check the server or disk it waited on, then run it again"
    path = _path(error)
    if isinstance(error, PermissionError):
        return f"permission denied for {path}. Fix: choose a path you may write to, or change its permissions"
    if isinstance(error, (FileExistsError, NotADirectoryError)):
        return f"{path} is in the way: a file stands where a folder is needed. Fix: pass a folder's path or move the file"
    if isinstance(error, IsADirectoryError):
        return f"{path} is a folder where a file is needed. Fix: pass a file's path"
    if isinstance(error, FileNotFoundError):
        return f"{path} does not exist. Fix: check the path"
    if error.errno == errno.ENOSPC:
        return f"the disk is full (writing {path}). Fix: free some space and run the command again"
    return f"{error.strerror or error} ({path}). Fix: check the path and the disk"


def explain_database_error(error: sqlite3.Error) -> str:
    text = str(error)
    if "locked" in text or "busy" in text:
        return (f"a database is busy ({text}): another process holds it. Fix: wait for that process to finish, "
                "then run the command again")
    if "readonly" in text:
        return f"a database is read-only ({text}). Fix: make the file and its folder writable, or pass another path"
    return f"a database could not be used ({text}). Fix: check the path names a KARD database and the disk is not full"


def explain(error: BaseException) -> str | None:
    """The one-line message for a file or database failure, or None for anything else (a bug)."""
    if isinstance(error, OSError):
        return explain_os_error(error)
    if isinstance(error, sqlite3.Error):
        return explain_database_error(error)
    return None
