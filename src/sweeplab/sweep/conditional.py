"""Conditional search spaces from ``hydra.sweeper.conditional``: for a searched config group
(``model``, ``model/optimizer``), each option's own space, sampled only when a trial chose it.

An option's space is written once, in ``configs/search_space/<group>/<option>.yaml`` (the
list form, ``{model: [mlp, cnn]}``, which the single-architecture searches include too), or
inline (``{model/optimizer: {sgd: {params: {...}}, adam: {}}}``). Either holds ``params``,
``layers`` and its own ``conditional``, as ``hydra.sweeper`` does. A plain value in an
option's ``params`` (``model/optimizer: adamw``) is part of that option only: a one-choice
parameter, so that it is recorded with the trial and replayed by ``best_of``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from hydra.errors import HydraException
from omegaconf import DictConfig, ListConfig, OmegaConf
from optuna.distributions import BaseDistribution, CategoricalDistribution

from sweeplab.errors import ConfigError
from sweeplab.sweep.spaces import LayerSpace, SearchSpace, parse_distribution

__all__ = ["SPACES_GROUP", "with_branches"]

SPACES_GROUP = "search_space"  # configs/search_space/<group>/<option>.yaml
Compose = Callable[[list[str]], DictConfig]
IsGroup = Callable[[str], bool]


def with_branches(
    space: SearchSpace, conditional: Mapping[str, Any] | None, compose: Compose, is_group: IsGroup
) -> SearchSpace:
    """``space`` with the options' spaces of ``conditional``; a group searched only there
    becomes a choice among the options it lists."""
    if not conditional:
        return space
    params = dict(space.params)
    branches: dict[str, dict[str, SearchSpace]] = {}
    for group, listed in conditional.items():
        group = str(group)
        where = f"hydra.sweeper.conditional.{group}"
        if not is_group(group):
            raise ConfigError(
                f"`{where}`: {group} is not a config group, so it has no options to give "
                "spaces of their own. Use a group such as model or model/optimizer."
            )
        nodes = _option_nodes(listed, where)
        params.setdefault(group, CategoricalDistribution(list(nodes)))
        _check_options(group, params[group], nodes, where)
        branches[group] = {
            option: _branch(group, option, node, compose, is_group)
            for option, node in nodes.items()
        }
    return SearchSpace(
        params, space.fixed, space.layers, space.extend, space.groups | set(branches), branches
    )


def _option_nodes(listed: Any, where: str) -> dict[str, Any]:
    """Option -> its inline space, or ``None`` for one in the search_space group."""
    if isinstance(listed, ListConfig | list):
        return {str(option): None for option in listed}
    if isinstance(listed, DictConfig | dict) and listed:
        return {str(option): node for option, node in listed.items()}
    raise ConfigError(
        f"`{where}`={listed!r} is invalid: list the options whose spaces are in "
        f"configs/{SPACES_GROUP}/ ([mlp, cnn]) or map each option to its space "
        "({sgd: {params: {model.optimizer.momentum: interval(0.0, 0.99)}}, adam: {}})."
    )


def _check_options(
    group: str, choice: BaseDistribution, nodes: Mapping[str, Any], where: str
) -> None:
    choices = (
        [str(c) for c in choice.choices] if isinstance(choice, CategoricalDistribution) else []
    )
    unknown = [option for option in nodes if option not in choices]
    if unknown:
        raise ConfigError(
            f"`{where}` gives a space to {', '.join(unknown)}, which the search never chooses: "
            f"{group} is searched over {', '.join(choices) or 'nothing'}. Add the option to "
            f"hydra.sweeper.params.{group}, or drop its space."
        )


def _branch(group: str, option: str, node: Any, compose: Compose, is_group: IsGroup) -> SearchSpace:
    chosen = [f"{group}={option}"]
    node = _load(group, option, compose) if node is None else node
    where = f"the space of {group}={option}"
    unknown = set(node or {}) - {"params", "layers", "conditional"}
    if unknown:
        raise ConfigError(
            f"{where} has {', '.join(sorted(map(str, unknown)))}: it may hold params, layers "
            "and conditional, as hydra.sweeper does."
        )
    node = node or {}
    params = {
        str(k): _distribution(str(k), v, where) for k, v in (node.get("params") or {}).items()
    }
    layers = LayerSpace.from_config(node["layers"]) if node.get("layers") else None
    groups = frozenset(key for key in params if is_group(key))
    branch = SearchSpace(params, [], layers, None, groups)
    return with_branches(
        branch, node.get("conditional"), lambda extra: compose([*chosen, *extra]), is_group
    )


def _distribution(key: str, value: Any, where: str) -> BaseDistribution:
    """A sweep expression's distribution; a plain value is a one-choice parameter."""
    text = str(value)
    if any(text.startswith(sweep) for sweep in ("choice(", "range(", "interval(", "tag(")):
        return parse_distribution(key, text)
    if not isinstance(value, str | int | float | bool):
        raise ConfigError(
            f"`{key}`={value!r} in {where} is not a single value a trial can record: give a "
            "number, a string or a boolean, or a sweep such as choice(a, b)."
        )
    return CategoricalDistribution([value])


def _load(group: str, option: str, compose: Compose) -> Any:
    """``configs/search_space/<group>/<option>.yaml``, read with the configs it may use."""
    try:
        config = compose([f"+{SPACES_GROUP}/{group}={option}"])
    except HydraException as e:
        raise ConfigError(
            f"No search space for {group}={option}: write it in configs/{SPACES_GROUP}/{group}/"
            f"{option}.yaml (params:, layers:), or give it inline under "
            f"hydra.sweeper.conditional.{group}.{option}. ({str(e).splitlines()[0]})"
        ) from None
    node = OmegaConf.select(config, f"{SPACES_GROUP}.{group.replace('/', '.')}")
    return OmegaConf.to_container(node, resolve=False) if node is not None else {}
