"""Try a search space's values on the model before the first trial, so that a value the
model refuses (a dropout of 1.5, a depth that shrinks the image to nothing) is one paragraph
now rather than failed trials later."""

from __future__ import annotations

import contextlib
import copy
import logging
import re
from collections.abc import Callable, Collection, Iterator
from typing import Any

from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf, open_dict
from optuna.distributions import BaseDistribution, CategoricalDistribution

from sweeplab import build, checks, trainers
from sweeplab.errors import ConfigError
from sweeplab.overrides import format_override
from sweeplab.sweep.spaces import SearchSpace, grid_choices

__all__ = ["GROUP_HINT", "Probe", "check_space"]

# A parameter in hydra.sweeper.params applies to every option of a group the search chooses.
GROUP_HINT = (
    "A parameter in hydra.sweeper.params applies to every option of a config group that the "
    "search chooses, so give each option its own space instead, sampled only when it is "
    "chosen: hydra.sweeper.conditional (hparams_search=arch_optuna chooses among "
    "architectures this way; see the README, Studies across architectures)."
)
Probe = tuple[str, dict[str, Any]]  # what is tried, in words; the key -> value overrides
PARTS = ("data", "callbacks", "trainer")  # what a run builds before training, with the model


def check_space(
    space: SearchSpace, config: DictConfig, compose: Callable[[list[str]], DictConfig]
) -> None:
    """Try every value of each parameter in turn (the ends of numeric ranges), the others at
    their first value, per-layer values at the smallest depth and the deepest stack, through
    the checks a run makes before training: its settings, data module, model, optimizer,
    callbacks and (when a trainer setting is searched) trainer; each option's conditional
    space likewise, with that option chosen. Then check the data files once. ``compose``
    builds a trial's config for group choices."""
    if OmegaConf.select(config, "model.net") is None:
        return  # not a sweeplab training config: nothing known to build
    output_dir = f"{config.hydra.sweep.dir}/trial_0"  # never written: nothing runs here

    def with_fixed(extra: list[str]) -> DictConfig:
        return compose([*space.fixed, *extra])

    _check_probes(space, with_fixed([]) if space.fixed else config, with_fixed, output_dir)
    build.instantiate(config.data, "data").prepare_data()  # files present and valid


def _check_probes(
    space: SearchSpace,
    config: DictConfig,
    compose: Callable[[list[str]], DictConfig],
    output_dir: str,
) -> None:
    base = {k: _values(d)[0] for k, d in space.params.items() if k not in space.groups}
    base.update(_layer_lists(space, depth=_depths(space)[0]) if space.layers else {})
    # The first probe builds every part; later ones rebuild the parts their values reach.
    layer_keys = space.layers.params if space.layers else {}
    searched = {_part(key) for key in [*space.params, *layer_keys]}
    for number, (what, overrides) in enumerate(_probes(space)):
        try:
            trial_config = _apply(config, {**base, **overrides}, compose, space.groups)
        except HydraException as e:  # say an option of a config group that does not exist
            raise ConfigError(
                f"The search space can propose {what}, which Hydra cannot compose: {e}"
            ) from None
        try:
            _check_before_training(trial_config, output_dir, PARTS if number == 0 else searched)
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
    for group, options in space.branches.items():
        for option, branch in options.items():
            chosen = [format_override(group, option)]

            def compose_chosen(extra: list[str], chosen: list[str] = chosen) -> DictConfig:
                return compose([*chosen, *extra])

            _check_probes(branch, compose_chosen([]), compose_chosen, output_dir)


def _check_before_training(config: DictConfig, output_dir: str, parts: Collection[str]) -> None:
    """What a run checks and builds before it trains (its settings and model, and the other
    ``parts``), without writing anything; a job's ${hydra:...} values exist only once it
    runs, so ``output_dir`` stands in for its own."""
    with open_dict(config):
        config.pop("hydra", None)
        if "output_dir" in config.get("paths", {}):
            config.paths.output_dir = output_dir
    checks.check_run(config)
    checks.check_optimizer(config)
    checks.check_logged(config, build.instantiate(config.model, "model"))
    if "data" in parts:
        build.instantiate(config.data, "data")
    if "callbacks" in parts:
        build.instantiate_group(config.get("callbacks"), "callbacks")
    if "trainer" in parts:
        with _lightning_quiet():  # its start-up lines (GPU available: ...) once per probe
            node = trainers.without_process_settings(config.trainer)
            build.instantiate(node, "trainer", logger=False, enable_checkpointing=False)


@contextlib.contextmanager
def _lightning_quiet() -> Iterator[None]:
    logger = logging.getLogger("pytorch_lightning")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def _part(key: str) -> str:
    """The part of a run a searched key configures: ``model/optimizer`` -> ``model``."""
    return re.split(r"[./]", _plain_key(key), maxsplit=1)[0]


def _plain_key(key: str) -> str:
    """``+model.net.extra`` -> ``model.net.extra``: an added key is set like any other."""
    return key.lstrip("+")


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
                OmegaConf.update(trial_config, _plain_key(key), value, merge=False)
    return trial_config
