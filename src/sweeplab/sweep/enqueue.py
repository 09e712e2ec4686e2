"""Override sets a sweep runs first (``hydra.sweeper.enqueue``), mapped to the trial
parameters the search space would propose for them: plain keys, per-layer lists, and the keys
of a conditional option's own space. Anything the space could not propose is refused in one
paragraph that names the set and the key."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import optuna
from hydra.core.override_parser.overrides_parser import OverridesParser
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import TrialState, create_trial

from sweeplab.errors import ConfigError
from sweeplab.sweep.spaces import BRANCH, LayerSpace, SearchSpace

__all__ = ["enqueue", "enqueued_params"]

log = logging.getLogger(__name__)

ENQUEUE_FORM = (
    "Give each set as a list of key=value overrides of the search space: in a config, "
    "enqueue: [[model.net.units=100, model.optimizer.lr=0.001]]; on the command line, "
    "\"hydra.sweeper.enqueue=[['model.net.units=100','model.optimizer.lr=0.001']]\"."
)


def enqueued_params(sets: Sequence[Any], space: SearchSpace) -> list[dict[str, Any]]:
    """Each override set as the trial parameters it fixes (per-layer lists as ``key[i]`` and
    the layer count, a conditional key under the option the set chooses); a ConfigError
    that names the set and the key for anything the space cannot propose."""
    return [
        _params(space, _values(given, f"hydra.sweeper.enqueue[{i}]"), i)
        for i, given in enumerate(sets)
    ]


def enqueue(study: optuna.Study, sets: list[dict[str, Any]]) -> None:
    """Queue each set's parameters to run first (only the sweep command does: Optuna's
    ``skip_if_exists`` is not safe between processes)."""
    before = len(study.get_trials(deepcopy=False))
    for params in sets:
        study.enqueue_trial(params, skip_if_exists=True)  # a resume enqueues nothing twice
    added = len(study.get_trials(deepcopy=False)) - before
    log.info(
        "Enqueued %d override set(s) of hydra.sweeper.enqueue to run first; %d already in the "
        "study",
        added,
        len(sets) - added,
    )


def _values(given: Any, where: str) -> dict[str, Any]:
    """An override set (``[key=value, ...]`` or ``{key: value}``) as typed values by key."""
    if isinstance(given, Mapping):
        return {str(key): value for key, value in given.items()}
    if not isinstance(given, list | tuple) or not all(isinstance(o, str) for o in given):
        raise ConfigError(
            f"`{where}`={given!r} is not a list of key=value overrides. {ENQUEUE_FORM}"
        )
    try:
        parsed = OverridesParser.create().parse_overrides(list(given))
    except Exception as e:  # Hydra's parser error: its first line says where
        raise ConfigError(
            f"`{where}` cannot be read: {str(e).splitlines()[0]} {ENQUEUE_FORM}"
        ) from None
    values = {}
    for override in parsed:
        if override.is_sweep_override() or override.is_delete() or override.value() is None:
            raise ConfigError(
                f"`{where}`: `{override.input_line}` is not one value: an enqueued set fixes "
                f"each key it names to a single value. {ENQUEUE_FORM}"
            )
        values[override.key_or_group] = override.value()
    return values


def _params(space: SearchSpace, values: dict[str, Any], index: int) -> dict[str, Any]:
    where = f"hydra.sweeper.enqueue[{index}]"
    used: set[str] = set()
    params = _resolve(space, values, "", used, where)
    if unknown := [key for key in values if key not in used]:
        key = unknown[0]
        if owners := _owners(space, key):  # a conditional key: its option must be chosen
            raise ConfigError(
                f"`{where}` sets `{key}`, which only the space of {' or '.join(owners)} "
                f"searches, but the set does not choose it: add {owners[0]} to the set."
            )
        raise ConfigError(
            f"`{where}` sets `{key}`, which is not in the sweep's search space "
            f"({', '.join(_searched(space))}), so the trial could not run it as given. "
            "Enqueue only searched keys (the others are sampled), or add the key to "
            "hydra.sweeper.params."
        )
    return params


def _resolve(
    space: SearchSpace, values: dict[str, Any], prefix: str, used: set[str], where: str
) -> dict[str, Any]:
    """The trial parameters ``values`` fix in ``space`` (named after ``prefix``), as
    ``SearchSpace._suggest`` names them; records the keys it used."""
    params = {}
    for key, distribution in space.params.items():
        if key in values:
            params[prefix + key] = _fitted(where, key, values[key], distribution)
            used.add(key)
    if space.layers:
        params |= _layer_params(space.layers, values, prefix, used, where)
    for group, options in space.branches.items():
        option = str(values.get(group))
        if group in values and option in options:  # only the chosen option's space applies
            params |= _resolve(options[option], values, f"{prefix}{option}{BRANCH}", used, where)
    return params


def _layer_params(
    layers: LayerSpace, values: dict[str, Any], prefix: str, used: set[str], where: str
) -> dict[str, Any]:
    """A per-layer key's list as ``key[i]`` parameters, and the layer count it implies."""
    given = {key: values[key] for key in layers.params if key in values}
    counts = {len(v) for v in given.values() if isinstance(v, list)}
    if any(not isinstance(v, list) for v in given.values()) or len(counts) > 1:
        raise ConfigError(
            f"`{where}` gives {', '.join(f'{k}={v}' for k, v in given.items())}: a per-layer "
            "key takes one value per layer, as a list, the same length for every such key "
            f"({next(iter(layers.params))}=[75,100] for two layers)."
        )
    params = {}
    if layers.count_name in values or counts:
        count = values.get(layers.count_name, next(iter(counts), None))
        if counts and count != next(iter(counts)):
            raise ConfigError(
                f"`{where}` sets {layers.count_name}={count} but gives "
                f"{next(iter(counts))} layer value(s): give as many values as layers."
            )
        params[prefix + layers.count_name] = _fitted(where, layers.count_name, count, layers.count)
        used.add(layers.count_name)
    for key, listed in given.items():
        for i, value in enumerate(listed):
            params[f"{prefix}{key}[{i}]"] = _fitted(where, f"{key}[{i}]", value, layers.params[key])
        used.add(key)
    return params


def _fitted(where: str, key: str, value: Any, distribution: BaseDistribution) -> Any:
    """``value`` as the distribution holds it (100.0 -> 100 for an int); a ConfigError when
    the space could not propose it."""
    if not _fits(value, distribution):
        raise ConfigError(
            f"`{where}` sets `{key}={value}`, outside the search space ({key}: "
            f"{_describe(distribution)}), so the trial could not run it as given. Enqueue a "
            "value the space can propose, or widen the space."
        )
    return distribution.to_external_repr(distribution.to_internal_repr(value))


def _fits(value: Any, distribution: BaseDistribution) -> bool:
    """Whether ``distribution`` holds ``value``: Optuna's own check of a trial's parameters."""
    try:
        create_trial(
            state=TrialState.WAITING, params={"p": value}, distributions={"p": distribution}
        )
    except (ValueError, TypeError):
        return False
    return not isinstance(value, bool) or isinstance(distribution, CategoricalDistribution)


def _describe(distribution: BaseDistribution) -> str:
    if isinstance(distribution, CategoricalDistribution):
        return f"choice{tuple(distribution.choices)}"
    assert isinstance(distribution, FloatDistribution | IntDistribution)  # the kinds sampled
    step = f" step {distribution.step}" if distribution.step not in (None, 1) else ""
    return f"{'log ' if distribution.log else ''}{distribution.low}..{distribution.high}{step}"


def _searched(space: SearchSpace) -> list[str]:
    keys = [*space.params, *(space.layers.params if space.layers else {})]
    return keys + ([space.layers.count_name] if space.layers else [])


def _owners(space: SearchSpace, key: str) -> list[str]:
    """The group choices (``model=cnn``) whose own space searches ``key``."""
    found = []
    for group, options in space.branches.items():
        for option, branch in options.items():
            if key in _searched(branch):
                found.append(f"{group}={option}")
            found += _owners(branch, key)
    return found
