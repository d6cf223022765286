"""The one error type for bad input, and the CLI's exit codes."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Exit codes of the `rca` command."""

    OK = 0  # ran; no gate tripped
    GATE_FAILED = 1  # a `compare` gate tripped (a regression was found)
    USAGE = 2  # bad usage, or no usable input at all
    INTERRUPTED = 130


class InputError(Exception):
    """Input that cannot be read: names the file and, where known, the line.

    The CLI prints it as one line (`rca: error: <file>:<line>: <reason>`), never a traceback.
    """

    def __init__(self, reason: str, file: str | None = None, line: int | None = None, hint: str | None = None):
        self.reason = reason
        self.file = file
        self.line = line
        self.hint = hint
        super().__init__(str(self))

    def __str__(self) -> str:
        where = ""
        if self.file is not None:
            where = f"{self.file}:{self.line}: " if self.line is not None else f"{self.file}: "
        return f"{where}{self.reason}"


class UsageError(Exception):
    """A bad option value or combination; exit code 2."""
