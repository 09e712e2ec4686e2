"""The study's sampler and pruner, built from their config groups
(``hydra/sweeper/sampler=...``, ``hydra/sweeper/pruner=...``) and checked before the first
trial."""

from __future__ import annotations

import logging
import math
from typing import Any

import optuna
from omegaconf import DictConfig

from sweeplab.compat import hydra as hydra_compat
from sweeplab.compat.optuna import experimental
from sweeplab.errors import ConfigError
from sweeplab.sweep.spaces import SearchSpace
from sweeplab.trust import family

__all__ = ["build_pruner", "build_sampler"]

log = logging.getLogger(__name__)

# What these groups may instantiate: Optuna's samplers and pruners, by name.
SAMPLERS = ("optuna.samplers", "optuna.samplers.BaseSampler")
PRUNERS = ("optuna.pruners", "optuna.pruners.BasePruner")


def build_sampler(
    node: DictConfig | None, space: SearchSpace, n_trials: int
) -> tuple[optuna.samplers.BaseSampler | None, int]:
    """The sampler (``None``: Optuna's default), and the number of trials it can propose: the
    grid sampler runs at most its grid's size."""
    if node is None:
        return None, n_trials
    with experimental():  # e.g. TPE's `group`: experimental, and what we want
        sampler = _instantiate(node, "hydra.sweeper.sampler", SAMPLERS)
    if getattr(sampler, "func", None) is optuna.samplers.GridSampler:
        grid = space.grid()
        size = math.prod(len(values) for values in grid.values())
        log.info("Grid sampler: n_trials=%d (at most the grid's size)", min(n_trials, size))
        return sampler(grid), min(n_trials, size)
    return sampler, n_trials


def build_pruner(
    node: DictConfig | None, key: str = "hydra.sweeper.pruner"
) -> optuna.pruners.BasePruner:
    """The pruner configured at ``key``; Optuna's no-op pruner when pruning is off."""
    if not node:
        return optuna.pruners.NopPruner()
    pruner = _instantiate(node, key, PRUNERS)
    if isinstance(pruner, optuna.pruners.HyperbandPruner):
        # Hyperband builds its successive-halving brackets at the first report, so a setting
        # they refuse (reduction_factor=1) would fail trials mid-sweep: build one now, for
        # Optuna's own check.
        bracket = {k: node[k] for k in ("min_resource", "reduction_factor") if k in node}
        try:
            optuna.pruners.SuccessiveHalvingPruner(**bracket)
        except ValueError as e:
            raise ConfigError(
                f"Invalid config at `{key}`: {str(e).rstrip('.')}. Hyperband "
                "runs brackets of successive halving with these settings; its defaults are "
                "min_resource: 1, reduction_factor: 3."
            ) from None
    return pruner


def _instantiate(node: DictConfig, key: str, allowed: tuple[str, str]) -> Any:
    try:
        return hydra_compat.instantiate(node, family(*allowed))
    except Exception as e:
        raise ConfigError(
            f"Invalid config at `{key}`: {e}. Pick one of the options of the "
            f"{key.replace('.', '/')} group."
        ) from None
