"""The errors crackbench raises for problems a user can fix (bad data, bad arguments, a file that
is not a crackbench model). The command line prints these as one line; any other exception is a
bug and keeps its traceback."""

from __future__ import annotations

__all__ = ["CrackbenchError", "ModelFileError", "UsageError"]


class CrackbenchError(ValueError):
    """Base class: the message says what was wrong and, where it helps, what to do."""


class UsageError(CrackbenchError):
    """An argument or a combination of arguments that cannot work; the message names it."""


class ModelFileError(CrackbenchError):
    """A file that cannot be loaded as a crackbench model; nothing in it was run."""
