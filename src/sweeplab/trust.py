"""What a config may instantiate: sweeplab's own targets, and the module prefixes a user
names in ``SWEEPLAB_TRUSTED`` for their own architectures."""

from __future__ import annotations

import fnmatch
import os
import re

from sweeplab.errors import ConfigError

__all__ = ["BUILTIN_TARGETS", "TRUSTED_ENV", "check_trusted", "trusted_targets"]

BUILTIN_TARGETS = ("sweeplab.*", "torch.optim.*", "optuna.pruners.*", "pytorch_lightning.*")
TRUSTED_ENV = "SWEEPLAB_TRUSTED"
MODULE_PREFIX = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")


def trusted_targets() -> list[str]:
    """sweeplab's own targets and those under the prefixes named in ``SWEEPLAB_TRUSTED``."""
    prefixes = [p.strip() for p in os.environ.get(TRUSTED_ENV, "").split(",") if p.strip()]
    for prefix in prefixes:
        if not MODULE_PREFIX.fullmatch(prefix):
            raise ConfigError(
                f"{TRUSTED_ENV} holds {prefix!r}, which is not a module prefix: give dotted "
                f"Python module names separated by commas, e.g. {TRUSTED_ENV}=myarch,lab.models "
                "(each trusts that module and everything under it)."
            )
    return [*BUILTIN_TARGETS, *(f"{p}.*" for p in prefixes)]


def check_trusted(target: str, key: str, allowed: list[str]) -> None:
    """Refuse the dotted name ``target``, read from config ``key`` (a ``_target_`` or any other
    name a config turns into a Python object), unless it matches one of ``allowed``."""
    if not any(fnmatch.fnmatch(target, pattern) for pattern in allowed):
        raise ConfigError(
            f"`{key}`={target!r} is not trusted: sweeplab instantiates only "
            f"{', '.join(allowed)}. If it is your own code, name its package in the "
            f"environment variable {TRUSTED_ENV} (comma-separated module prefixes), e.g. "
            f"{TRUSTED_ENV}={target.split('.')[0]} python train.py ..."
        )
