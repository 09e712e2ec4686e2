"""Search spaces: Hydra's sweep syntax turned into Optuna distributions, per-layer parameters
that exist only for the layers a trial has, and the overrides a trial runs with.

Hydra's override parser is public API; the mapping from its sweeps to Optuna distributions is
ours, so that no private part of the Hydra Optuna plugin is needed to sample.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import optuna
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, Transformer
from omegaconf import DictConfig
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from sweeplab.errors import ConfigError
from sweeplab.overrides import format_override, override_key

__all__ = [
    "BRANCH",
    "NOT_TRAINING_GROUPS",
    "SWEEP_ONLY_KEYS",
    "SYNTAX_HINT",
    "LayerSpace",
    "SearchSpace",
    "base_overrides",
    "grid_choices",
    "override_key_of",
    "parse_distribution",
    "shapes_results",
    "suggest",
    "to_distribution",
]

# Overrides of the sweep command that make a run a trial, not part of the configuration.
SWEEP_ONLY_KEYS = ("hparams_search", "name")  # name: the study's
# Config groups that do not change what a run trains: left out of the best configuration.
NOT_TRAINING_GROUPS = (
    "hydra",
    "hparams_search",
    "search_space",
    "logger",
    "callbacks",
    "paths",
    "debug",
)
# Values that say where a run reads data or writes logs, not what it trains.
LOCATION_KEYS = ("data.data_dir", "data.cache_dir", "data.download")
BRANCH = ":"  # between a conditional parameter's option and key: cnn:model.net.filters
SYNTAX_HINT = (
    "Use Hydra's sweep syntax: choice(a, b), range(low, stop, step=s), interval(low, high) or "
    "tag(log, interval(low, high))."
)


def to_distribution(override: Override) -> BaseDistribution | None:
    """The Optuna distribution of a sweep override; ``None`` for a plain ``key=value``.

    ``choice`` is categorical; ``range`` is an int or stepped float distribution (Hydra's stop
    is exclusive, Optuna's high inclusive); ``interval`` is uniform, ``tag(log, ...)`` log.
    """
    if not override.is_sweep_override():
        return None
    if override.is_choice_sweep() or (
        override.is_range_sweep() and (override.value().shuffle or override.value().transformers)
    ):
        return CategoricalDistribution(list(override.sweep_iterator(Transformer.encode)))
    sweep = override.value()
    if override.is_range_sweep():
        values = list(override.sweep_iterator())
        if not values:
            raise ValueError("the range is empty")
        if sweep.step == 0:
            raise ValueError("a range needs a nonzero step")
        low, high = min(values), max(values)
        if all(isinstance(v, int) for v in values):
            return IntDistribution(low, high, step=abs(int(sweep.step)))
        step = abs(float(sweep.step))
        if len(values) > 1 and abs(round((high - low) / step) * step - (high - low)) > 1e-9:
            return CategoricalDistribution(values)  # not an exact float grid: keep the values
        return FloatDistribution(float(low), float(high), step=step)
    if override.is_interval_sweep():
        log = "log" in sweep.tags
        if isinstance(sweep.start, int) and isinstance(sweep.end, int):
            return IntDistribution(sweep.start, sweep.end, log=log)
        return FloatDistribution(float(sweep.start), float(sweep.end), log=log)
    raise ValueError(f"{override.input_line} is not a sweep Optuna can sample")


def parse_distribution(key: str, expression: str) -> BaseDistribution:
    """``parse_distribution("lr", "choice(0.1, 0.01)")`` -> ``CategoricalDistribution``."""
    try:
        [override] = OverridesParser.create().parse_overrides([f"{key}={expression}"])
        distribution = to_distribution(override)
    except Exception as e:
        raise ConfigError(
            f"Cannot read the search space of `{key}`: {expression!r} ({e}). {SYNTAX_HINT}"
        ) from None
    if distribution is None:
        raise ConfigError(
            f"`{key}`: {expression!r} is a single value, not a search space: use choice(...), "
            "range(...) or interval(...)."
        )
    return distribution


def suggest(trial: optuna.Trial, name: str, distribution: BaseDistribution) -> Any:
    """Sample ``name`` from ``distribution`` through the trial's public ``suggest_*`` API."""
    if isinstance(distribution, CategoricalDistribution):
        return trial.suggest_categorical(name, distribution.choices)
    if isinstance(distribution, IntDistribution):
        return trial.suggest_int(
            name, distribution.low, distribution.high, step=distribution.step, log=distribution.log
        )
    if isinstance(distribution, FloatDistribution):
        return trial.suggest_float(
            name, distribution.low, distribution.high, step=distribution.step, log=distribution.log
        )
    raise TypeError(f"unsupported distribution for {name}: {distribution!r}")


def grid_choices(name: str, distribution: BaseDistribution) -> list[Any]:
    """Every value of a discrete distribution, for the grid sampler."""
    if isinstance(distribution, CategoricalDistribution):
        return list(distribution.choices)
    if isinstance(distribution, IntDistribution) and not distribution.log:
        return list(range(distribution.low, distribution.high + 1, distribution.step))
    if isinstance(distribution, FloatDistribution) and distribution.step is not None:
        count = round((distribution.high - distribution.low) / distribution.step) + 1
        return [distribution.low + i * distribution.step for i in range(count)]
    raise ConfigError(
        f"The grid sampler needs discrete values, but `{name}` is continuous: give it as "
        "choice(...) or range(...), or use hydra/sweeper/sampler=tpe."
    )


@dataclass(frozen=True)
class LayerSpace:
    """A variable number of layers, each with its own parameters.

    ``count_name`` is the trial parameter holding the number of layers; parameter ``key``
    of layer ``i`` is the trial parameter ``key[i]``, sampled only when layer ``i`` exists,
    and the layers' values reach the run as one list override ``key=[v0,v1,...]``.
    """

    count_name: str
    count: BaseDistribution
    params: Mapping[str, BaseDistribution]

    @classmethod
    def from_config(cls, node: Mapping[str, Any]) -> LayerSpace:
        missing = {"name", "count", "params"} - set(node)
        if missing:
            raise ConfigError(
                f"`hydra.sweeper.layers` lacks {', '.join(sorted(missing))}: it needs `name` (the "
                "trial parameter for the number of layers), `count` (e.g. range(1, 3)) and "
                "`params` (per-layer key: search space)."
            )
        return cls(
            count_name=str(node["name"]),
            count=parse_distribution(str(node["name"]), str(node["count"])),
            params={
                str(key): parse_distribution(f"{key}[i]", str(expression))
                for key, expression in node["params"].items()
            },
        )

    def suggest(self, trial: optuna.Trial, prefix: str = "") -> dict[str, list[Any]]:
        """Sample the layer count, then each existing layer's parameters (trial parameter
        names after ``prefix``); return the lists."""
        count = int(suggest(trial, prefix + self.count_name, self.count))
        return {
            key: [suggest(trial, f"{prefix}{key}[{i}]", dist) for i in range(count)]
            for key, dist in self.params.items()
        }

    def distributions(self) -> dict[str, BaseDistribution]:
        """The layer count's and each layer's distribution (``key[i]`` for every layer)."""
        return {self.count_name: self.count} | {f"{k}[i]": d for k, d in self.params.items()}


@dataclass(frozen=True)
class SearchSpace:
    """What a trial samples (``params``, ``layers``, a custom extender) and what it runs with
    unchanged (``fixed``: the sweep's plain overrides, in Hydra's syntax)."""

    params: Mapping[str, BaseDistribution]
    fixed: list[str] = field(default_factory=list)
    layers: LayerSpace | None = None
    extend: Callable[[Any, optuna.Trial], None] | None = None
    groups: frozenset[str] = frozenset()  # the params that choose a config group's option
    # Conditional spaces: for a group param (``model``), each option's own space, sampled
    # only when the trial chose that option, its parameters named ``<option>:<key>``.
    branches: Mapping[str, Mapping[str, SearchSpace]] = field(default_factory=dict)

    @classmethod
    def from_overrides(
        cls,
        overrides: list[str],
        layers: LayerSpace | None = None,
        extend: Callable[[Any, optuna.Trial], None] | None = None,
        is_group: Callable[[str], bool] | None = None,
    ) -> SearchSpace:
        """Split ``key=value`` and ``key=<sweep>`` overrides; a later plain value of a key
        (say on the command line) fixes a parameter the configs made a sweep. ``is_group``
        tells config groups (``model``, ``model/optimizer``) from values: ask Hydra's config
        loader."""
        params: dict[str, BaseDistribution] = {}
        fixed: dict[str, str] = {}
        try:
            parsed = OverridesParser.create().parse_overrides(overrides)
        except Exception as e:
            raise ConfigError(f"Cannot read the sweep's overrides: {e} {SYNTAX_HINT}") from None
        for override in parsed:
            key = override.get_key_element()
            try:
                distribution = to_distribution(override)
            except Exception as e:
                raise ConfigError(
                    f"Cannot read the search space of `{key}`: {override.input_line!r} ({e}). "
                    f"{SYNTAX_HINT}"
                ) from None
            if distribution is None:
                params.pop(key, None)
                fixed[key] = str(override.input_line)
            else:
                fixed.pop(key, None)
                params[key] = distribution
        groups = frozenset(key for key in params if is_group is not None and is_group(key))
        return cls(params, list(fixed.values()), layers, extend, groups)

    def grid(self) -> dict[str, list[Any]]:
        if self.layers or self.extend or self.branches:
            raise ConfigError(
                "The grid sampler needs every parameter in hydra.sweeper.params, but this "
                "search has per-layer parameters (hydra.sweeper.layers), conditional spaces "
                "(hydra.sweeper.conditional) or a custom_search_space: use "
                "hydra/sweeper/sampler=tpe, gp or random."
            )
        return {name: grid_choices(name, d) for name, d in self.params.items()}

    def distributions(self, prefix: str = "") -> dict[str, BaseDistribution]:
        """Every trial parameter this space may sample, by name: per-layer ones as
        ``key[i]``, conditional ones as ``<option>:<key>`` (a custom extender's are its own)."""
        found = {prefix + k: d for k, d in self.params.items()}
        if self.layers:
            found |= {prefix + k: d for k, d in self.layers.distributions().items()}
        for options in self.branches.values():
            for option, branch in options.items():
                found |= branch.distributions(f"{prefix}{option}{BRANCH}")
        return found

    def sample(self, trial: optuna.Trial, config: Any) -> list[str]:
        """Sample a trial's parameters; return them as overrides (per-layer ones as lists)."""
        chosen = self._suggest(trial)
        if self.extend:
            before = set(trial.params)
            self.extend(config, trial)
            chosen |= {name: v for name, v in trial.params.items() if name not in before}
        return [format_override(key, value) for key, value in chosen.items()]

    def _suggest(self, trial: optuna.Trial, prefix: str = "") -> dict[str, Any]:
        """This space's values by override key, its trial parameters named after ``prefix``;
        then the space of each group option chosen."""
        chosen = {key: suggest(trial, prefix + key, d) for key, d in self.params.items()}
        if self.layers:
            chosen |= self.layers.suggest(trial, prefix)
        for key, options in self.branches.items():
            option = str(chosen[key])
            if option in options:
                chosen |= options[option]._suggest(trial, f"{prefix}{option}{BRANCH}")
        return chosen


def override_key_of(param_name: str) -> str:
    """The override a trial parameter sets: ``cnn:model.net.filters[0]`` -> ``model.net.filters``
    (a per-layer value reaches the run in its layer list)."""
    return re.sub(r"\[\d+\]$", "", param_name.rsplit(BRANCH, 1)[-1])


def shapes_results(key: str) -> bool:
    """Whether an override of ``key`` can change what a trial measures."""
    group = key.lstrip("+~").split("/", 1)[0].split(".", 1)[0]
    return group not in NOT_TRAINING_GROUPS and key.lstrip("+~") not in LOCATION_KEYS


def base_overrides(config: DictConfig, space: SearchSpace) -> list[str]:
    """What every trial's sampled overrides apply to, for retraining a trial exactly: the
    group choices (model, its optimizer and scheduler, the objective whose monitor ranked the
    trials, data, trainer), the config search path and the sweep's fixed overrides."""
    choices = config.hydra.runtime.choices
    # Every group choice that shapes training, including those the search config itself sets
    # (say model/optimizer=adamw); a sampled group comes with each trial's overrides instead,
    # and so do its sub-groups, which each option's own config chooses.
    sampled = [group for group in space.params if group in space.groups]
    groups = [
        group
        for group, option in choices.items()
        if option is not None
        and group.split("/", 1)[0] not in NOT_TRAINING_GROUPS
        and not any(group == s or group.startswith(f"{s}/") for s in sampled)
    ]
    groups.sort(key=lambda group: (group.split("/", 1)[0] != "model", group))  # model first
    base = {group: f"{group}={choices[group]}" for group in groups}
    if config.hydra.searchpath:  # configs from the user's own directories (plug-ins)
        base["hydra.searchpath"] = format_override(
            "hydra.searchpath", list(config.hydra.searchpath)
        )
    for override in space.fixed:
        key = override_key(override)
        if key not in SWEEP_ONLY_KEYS:
            base[key] = override
    return list(base.values())
