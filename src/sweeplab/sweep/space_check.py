"""Try a search space's values on the model before the first trial, so that a value the
model refuses (a dropout of 1.5, a depth that shrinks the image to nothing) is one paragraph
now rather than failed trials later."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any

from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf, open_dict
from optuna.distributions import BaseDistribution, CategoricalDistribution

from sweeplab import build, checks
from sweeplab.errors import ConfigError
from sweeplab.overrides import format_override
from sweeplab.sweep.spaces import SearchSpace, grid_choices

__all__ = ["GROUP_HINT", "Probe", "check_space"]

# Until a search can give each option of a group its own space, every parameter applies to
# every option.
GROUP_HINT = (
    "Every parameter of the search applies to every option of a config group that it "
    "chooses, so a choice such as model=choice(mlp,cnn) works only with parameters that every "
    "option has: sweep each architecture with its own search (hparams_search=mlp_optuna, "
    "cnn_optuna, resnet_optuna) and compare the results, or choose only among options that "
    "share their parameters."
)
Probe = tuple[str, dict[str, Any]]  # what is tried, in words; the key -> value overrides


def check_space(
    space: SearchSpace, config: DictConfig, compose: Callable[[list[str]], DictConfig]
) -> None:
    """Build the model and optimizer with every value of each parameter in turn (the ends of
    numeric ranges), the others at their first value; per-layer values at the smallest depth,
    and the deepest stack. ``compose`` builds a trial's config for group choices."""
    if OmegaConf.select(config, "model.net") is None:
        return  # not a sweeplab training config: nothing known to build
    base = {k: _values(d)[0] for k, d in space.params.items() if k not in space.groups}
    base.update(_layer_lists(space, depth=_depths(space)[0]) if space.layers else {})
    for what, overrides in _probes(space):
        try:
            trial_config = _apply(config, {**base, **overrides}, compose, space.groups)
        except HydraException as e:  # say an option of a config group that does not exist
            raise ConfigError(
                f"The search space can propose {what}, which Hydra cannot compose: {e}"
            ) from None
        try:
            checks.check_optimizer(trial_config)
            build.instantiate(trial_config.model, "model")
        except ConfigError as e:
            fix = (
                GROUP_HINT
                if space.groups & set(overrides)
                else "Narrow that range in hydra.sweeper.params or hydra.sweeper.layers "
                "(configs/hparams_search/), or fix the other settings it meets."
            )
            raise ConfigError(
                f"The search space can propose {what}, which the run refuses: {e} {fix}"
            ) from None


def _probes(space: SearchSpace) -> Iterator[Probe]:
    for key, distribution in space.params.items():
        for value in _values(distribution):
            yield f"{key}={value}", {key: value}
    if not space.layers:
        return
    depths = _depths(space)
    for key, distribution in space.layers.params.items():
        for value in _values(distribution):
            lists = _layer_lists(space, depths[0], {key: value})
            yield f"{key}=[{value}, ...] ({space.layers.count_name}={depths[0]})", lists
    deepest = _layer_lists(space, depths[-1])
    yield (
        f"{space.layers.count_name}={depths[-1]} with "
        + ", ".join(format_override(k, v) for k, v in deepest.items()),
        deepest,
    )


def _values(distribution: BaseDistribution) -> list[Any]:
    """Every choice of a categorical; the two ends of a numeric range."""
    if isinstance(distribution, CategoricalDistribution):
        return list(distribution.choices)
    return [distribution.low, distribution.high]  # type: ignore[attr-defined]


def _depths(space: SearchSpace) -> list[int]:
    assert space.layers is not None
    counts = [int(c) for c in grid_choices(space.layers.count_name, space.layers.count)]
    return [max(min(counts), 1), max(counts)]


def _layer_lists(
    space: SearchSpace, depth: int, chosen: dict[str, Any] | None = None
) -> dict[str, list[Any]]:
    assert space.layers is not None
    chosen = chosen or {}
    return {
        key: [chosen.get(key, _values(distribution)[0])] * depth
        for key, distribution in space.layers.params.items()
    }


def _apply(
    config: DictConfig,
    overrides: dict[str, Any],
    compose: Callable[[list[str]], DictConfig],
    groups: frozenset[str],
) -> DictConfig:
    choices = [format_override(k, v) for k, v in overrides.items() if k in groups]
    trial_config = compose(choices) if choices else copy.deepcopy(config)
    with open_dict(trial_config):
        for key, value in overrides.items():
            if key not in groups:
                OmegaConf.update(trial_config, key, value, merge=False)
    return trial_config
