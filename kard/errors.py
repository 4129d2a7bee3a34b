"""Named exceptions. Each message says what went wrong and how to fix it.

The command line and the app catch `KardError` and show its message; anything else is a bug.
Modules define narrower subclasses next to the code that raises them.
"""

from __future__ import annotations


class KardError(Exception):
    """An error a user can fix: the message names the problem and the fix."""

    page: str | None = None
    """What the app's page shows instead, where the message would not fit there (a server path or pid, a shell
    command as the fix): set on the instance; None: the message."""


def page_text(error: BaseException) -> str:
    """The text the app's page shows for `error`: its `KardError.page` text where it has one, else its message."""
    return getattr(error, "page", None) or str(error)


class DataError(KardError, ValueError):
    """A data file or record is missing, empty or malformed."""

    def __init__(self, problem: str, *, path: object = None, line: int | None = None, fix: str = ""):
        where = ""
        if path is not None:
            where = f"{path}" + (f", line {line}" if line is not None else "") + ": "
        message = f"{where}{problem}" + (f". Fix: {fix}" if fix else "")
        super().__init__(message)
        self.path = path
        self.line = line
        self.problem = problem
        self.fix = fix


class ConfigError(KardError, ValueError):
    """A setting, argument or path is invalid."""


class ModelNotFoundError(KardError, FileNotFoundError):
    """A model folder, file, hub id or package could not be found."""


class MissingDependencyError(KardError, ImportError):
    """An optional package is not installed."""

    def __init__(self, package: str, purpose: str):
        super().__init__(f"{purpose} needs the '{package}' package. Fix: pip install {package}")
