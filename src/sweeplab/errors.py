"""Errors that reach the user as one paragraph instead of a traceback, and the one way out."""

import sys
from typing import NoReturn

from omegaconf.errors import OmegaConfBaseException

__all__ = [
    "USER_ERRORS",
    "ConfigError",
    "DataError",
    "SweeplabError",
    "TrainingDiverged",
    "exit_with",
    "from_omegaconf",
    "user_error",
]


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


def exit_with(error: SweeplabError | str, status: int = 1) -> NoReturn:
    """The user-error exit of every entry point: the paragraph on stderr, exit ``status``
    (2 for a malformed command-line argument, as argparse does)."""
    print(f"\nError: {error}", file=sys.stderr)
    raise SystemExit(status) from None


# What a run reports to its user as one paragraph instead of a traceback.
USER_ERRORS = (SweeplabError, OmegaConfBaseException)


def user_error(error: SweeplabError | OmegaConfBaseException) -> SweeplabError:
    """One of ``USER_ERRORS`` as sweeplab's own error, ready for ``exit_with``."""
    return error if isinstance(error, SweeplabError) else from_omegaconf(error)


def from_omegaconf(error: OmegaConfBaseException) -> ConfigError:
    """An OmegaConf error met while reading the config (a ``???`` value, a broken
    ``${...}`` interpolation, a missing key), as one paragraph that names the key."""
    key = getattr(error, "full_key", None) or "?"  # set when the whole config is resolved
    reason = str(error).strip().splitlines()[0]
    hint = (
        " `model=classifier` is the base that every architecture builds on, not an "
        "architecture: pick model=mlp, cnn or resnet."
        if key == "model.net"
        else ""
    )
    return ConfigError(
        f"The config value at `{key}` cannot be read: {reason}.{hint} Give it a value in "
        f"configs/ or on the command line ({key}=...); an interpolation ${{...}} must name an "
        "existing key."
    )
