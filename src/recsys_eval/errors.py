"""Errors and exit codes shared by every command."""

from __future__ import annotations

EXIT_OK = 0
EXIT_ERROR = 1  # invalid input, bad flags or config, failed validation, any other error
EXIT_HOLD = 2  # experiment decision: hold
EXIT_FAIL = 3  # experiment decision: fail / roll back
EXIT_GATE = 4  # offline regression gate failed (the reference used 1, the same as bad input)


class RecsysEvalError(Exception):
    """An error the user can act on. The message is printed as is, without a traceback."""

    exit_code = EXIT_ERROR

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class ConfigError(RecsysEvalError):
    """A dataset or eval YAML file, or a flag, is invalid."""


class DatabaseLockedError(RecsysEvalError):
    """Another process holds the DuckDB file."""
