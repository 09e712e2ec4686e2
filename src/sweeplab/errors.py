"""Errors that reach the user as one paragraph instead of a traceback, and the one way out."""

import sys
from typing import NoReturn


class SweeplabError(Exception):
    """An error caused by the user's input (config, data, paths) with a message that says the fix.

    Entry points print the message alone and exit non-zero; everything else is a bug and
    keeps its traceback.
    """


class ConfigError(SweeplabError, ValueError):
    """A config value is invalid; the message names the key, the value and the fix."""


class DataError(SweeplabError):
    """Dataset files are missing, corrupt or cannot be downloaded."""


class TrainingDiverged(SweeplabError):
    """The training loss became NaN or infinite."""


def exit_with(error: SweeplabError) -> NoReturn:
    """The user-error exit of every entry point: the paragraph on stderr, exit status 1."""
    print(f"\nError: {error}", file=sys.stderr)
    raise SystemExit(1) from None
