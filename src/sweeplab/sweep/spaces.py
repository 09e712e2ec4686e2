"""Search spaces: Hydra's sweep syntax turned into Optuna distributions, and per-layer
parameters that exist only for the layers a trial has."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import optuna
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra_plugins.hydra_optuna_sweeper._impl import create_optuna_distribution_from_override
from optuna.distributions import BaseDistribution

from sweeplab.errors import ConfigError


def parse_distribution(key: str, expression: str) -> BaseDistribution:
    """``parse_distribution("lr", "choice(0.1, 0.01)")`` -> ``CategoricalDistribution``."""
    try:
        [override] = OverridesParser.create().parse_overrides([f"{key}={expression}"])
        distribution = create_optuna_distribution_from_override(override)
    except Exception as e:
        raise ConfigError(
            f"Cannot read the search space of `{key}`: {expression!r} ({e}). Use Hydra's sweep "
            "syntax: choice(a, b), range(low, stop, step=s), interval(low, high) or "
            "tag(log, interval(low, high))."
        ) from None
    if not isinstance(distribution, BaseDistribution):
        raise ConfigError(
            f"`{key}`: {expression!r} is a single value, not a search space: use choice(...), "
            "range(...) or interval(...)."
        )
    return distribution


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

    def owns(self, param_name: str) -> bool:
        """Whether a trial parameter is this space's layer count or a per-layer value."""
        return param_name == self.count_name or param_name.split("[", 1)[0] in self.params

    def suggest(self, trial: optuna.Trial) -> dict[str, list[Any]]:
        """Sample the layer count, then each existing layer's parameters; return the lists."""
        count = int(trial._suggest(self.count_name, self.count))
        return {
            key: [trial._suggest(f"{key}[{i}]", dist) for i in range(count)]
            for key, dist in self.params.items()
        }


def format_override(key: str, value: Any) -> str:
    """``key=value`` in Hydra's override grammar, lists included."""
    if isinstance(value, list | tuple):
        return f"{key}=[{','.join(str(v) for v in value)}]"
    return f"{key}={value}"
