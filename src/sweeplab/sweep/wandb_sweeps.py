"""A sweep's search space as a W&B Sweeps definition (``sweeps/*.yaml``).

W&B Sweeps have no conditional parameters, so a variable number of layers
(``hydra.sweeper.layers``) becomes one categorical parameter whose values are whole layer
stacks: every combination of the per-layer values for every layer count, written as one
Hydra dict override of the keys' common parent (``model.net={filters: [32, 64], ...}``),
which Hydra merges into the config. Every run W&B proposes is then a valid configuration.
W&B's parameter names cannot hold a config group's ``/`` either, so a group choice such as
``model/optimizer`` becomes the parameter ``model.optimizer`` whose values are the options'
contents as Hydra dicts, merged the same way over the default option (``++`` overrides, so
that an option's own keys may be added).
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import yaml
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from sweeplab.errors import ConfigError
from sweeplab.overrides import format_override, hydra_value, override_key
from sweeplab.sweep.settings import optuna_direction
from sweeplab.sweep.spaces import (
    LayerSpace,
    SearchSpace,
    base_overrides,
    grid_choices,
)

__all__ = ["AGENT_COMMAND", "compose_search", "config_groups", "to_yaml", "wandb_sweep"]

# The command an agent runs: W&B's values arrive after the fixed overrides as ``++key=value``,
# which may also add keys to a config node (a group option's own keys, like SGD's momentum).
AGENT_COMMAND = ["${env}", "python", "${program}", "${args_override_hydra}"]
_ABSENT = object()


def wandb_sweep(
    config_dir: Path, overrides: list[str], name: str | None = None, program: str = "train.py"
) -> dict[str, Any]:
    """The W&B Sweeps definition (Bayesian search) of the sweep that ``overrides`` (such as
    ``hparams_search=cnn_optuna``) compose from ``config_dir``; ``name`` defaults to
    ``<model>_bayes``."""
    cfg = compose_search(config_dir, overrides)
    sweeper = cfg.hydra.sweeper
    if OmegaConf.is_list(cfg.optimized_metric):
        raise ConfigError(
            f"optimized_metric={list(cfg.optimized_metric)} has several objectives, but W&B "
            "Sweeps optimise one metric: use sweeplab's sweeper for a Pareto front, or export "
            "a single objective (objective=val_acc|val_loss)."
        )
    if sweeper.get("conditional"):
        raise ConfigError(
            f"This search gives options their own spaces (hydra.sweeper.conditional: "
            f"{', '.join(map(str, sweeper.conditional))}), but W&B Sweeps has no conditional "
            "parameters: every parameter would be applied to every option. Export one "
            "option's own search instead (hparams_search=cnn_optuna), or run this one with "
            "sweeplab's sweeper (python train.py -m ...)."
        )
    # As the sweeper reads them: the search config's params, then the command's overrides
    # (Hydra hands a sweeper no hydra.* overrides).
    own = [o for o in overrides if not override_key(o).startswith(("hydra.", "hydra/"))]
    searched = [format_override(str(k), v) for k, v in sweeper.get("params", {}).items()] + own
    groups = config_groups(config_dir, [override_key(o) for o in searched])
    space = SearchSpace.from_overrides(
        searched,
        layers=LayerSpace.from_config(sweeper.layers) if sweeper.get("layers") else None,
        is_group=groups.__contains__,
    )
    parameters = {
        key.replace("/", "."): _group_options(config_dir, overrides, key, dist, space)
        if key in space.groups
        else _parameter(key, dist)
        for key, dist in space.params.items()
    }
    if space.layers is not None:
        parameters.update(_layer_stacks(space.layers))
    name = name or f"{cfg.hydra.runtime.choices['model']}_bayes"
    # What a trial of the sweep runs with (group choices, fixed values, the search path),
    # which W&B's values then override.
    fixed = [*base_overrides(cfg, space), f"name={name}"]
    return {
        "name": name,
        "program": program,
        "method": "bayes",
        "metric": {"name": str(cfg.optimized_metric), "goal": optuna_direction(sweeper.direction)},
        "parameters": parameters,
        "command": [*AGENT_COMMAND[:3], *fixed, *AGENT_COMMAND[3:]],
    }


def _parameter(key: str, distribution: BaseDistribution) -> dict[str, Any]:
    if isinstance(distribution, CategoricalDistribution) or (
        isinstance(distribution, IntDistribution | FloatDistribution)
        and distribution.step is not None
        and not distribution.log
        and (distribution.high - distribution.low) / distribution.step < 100
    ):
        return {"values": grid_choices(key, distribution)}
    if isinstance(distribution, IntDistribution):
        kind = "q_log_uniform_values" if distribution.log else "int_uniform"
        extra = {"q": 1} if distribution.log else {}
        return {"distribution": kind, "min": distribution.low, "max": distribution.high, **extra}
    if isinstance(distribution, FloatDistribution):
        kind = "log_uniform_values" if distribution.log else "uniform"
        return {"distribution": kind, "min": distribution.low, "max": distribution.high}
    raise ConfigError(f"`{key}`: {distribution!r} has no W&B Sweeps equivalent.")


def _group_options(
    config_dir: Path,
    overrides: list[str],
    group: str,
    choices: BaseDistribution,
    space: SearchSpace,
) -> dict[str, Any]:
    """A config group's options as Hydra dicts to merge over the default option: each with
    every key of the default (else the merge would leave stale keys), less the keys that are
    sampled themselves (say model.optimizer.lr), which must not be overwritten."""
    node = group.replace("/", ".")
    sampled = {key.removeprefix(node + ".") for key in space.params if key.startswith(node + ".")}
    default = set(OmegaConf.select(compose_search(config_dir, overrides), node))
    options = []
    for option in grid_choices(group, choices):
        content = OmegaConf.select(
            compose_search(config_dir, [*overrides, f"{group}={option}"]), node
        )
        searched = [*space.params, *(space.layers.params if space.layers else [])]
        absent = [
            key
            for key in searched
            if key.startswith(node + ".")
            and OmegaConf.select(content, key.removeprefix(node + "."), default=_ABSENT) is _ABSENT
        ]
        if absent:
            raise ConfigError(
                f"W&B Sweeps cannot express the choice {group}={option}: the search also "
                f"samples {', '.join(absent)}, which that option does not have, and W&B Sweeps "
                "have no conditional parameters. Export one option's search at a time (say "
                "hparams_search=mlp_optuna and hparams_search=cnn_optuna), or use sweeplab's "
                "own sweeper."
            )
        missing = default - set(content)
        if missing:
            raise ConfigError(
                f"W&B Sweeps cannot express the choice {group}={option}: the option lacks "
                f"{', '.join(sorted(missing))}, which the default option sets, and W&B can only "
                "merge values over the default. Give every option of the group the same keys."
            )
        options.append(hydra_value({k: v for k, v in content.items() if k not in sampled}))
    return {"values": options}


def _layer_stacks(layers: LayerSpace) -> dict[str, Any]:
    parent = _common_parent(list(layers.params))
    per_layer = {key: grid_choices(f"{key}[i]", d) for key, d in layers.params.items()}
    stacks = []
    for count in grid_choices(layers.count_name, layers.count):
        for combination in itertools.product(
            *(itertools.product(*per_layer.values()) for _ in range(count))
        ):
            lists = {
                key.removeprefix(parent + "."): [layer[i] for layer in combination]
                for i, key in enumerate(per_layer)
            }
            stacks.append(hydra_value(lists))
    return {parent: {"values": stacks}}


def _common_parent(keys: list[str]) -> str:
    parents = {key.rpartition(".")[0] for key in keys}
    if len(parents) != 1 or "" in parents:
        raise ConfigError(
            f"The per-layer keys {', '.join(keys)} of hydra.sweeper.layers do not share one "
            "parent config node, so W&B Sweeps (which have no conditional parameters) cannot "
            "set them together; put them under one node such as model.net."
        )
    return parents.pop()


def compose_search(config_dir: Path, overrides: list[str]) -> DictConfig:
    """The ``train`` config with its ``hydra`` node, composed as a sweep would compose it
    (its sweep overrides, say ``model=choice(mlp,cnn)``, left to the search space)."""
    overrides = [o for o in overrides if not _is_sweep(o)]
    if not (config_dir / "train.yaml").is_file():
        raise ConfigError(
            f"{config_dir} holds no train.yaml: run from the project root, or pass its "
            "configs folder with --config-dir."
        )
    try:
        with initialize_config_dir(str(config_dir.resolve())):
            return compose("train", overrides=overrides, return_hydra_config=True)
    except HydraException as e:
        raise ConfigError(f"Cannot compose the sweep's config: {e}") from None


def _is_sweep(override: str) -> bool:
    try:
        [parsed] = OverridesParser.create().parse_overrides([override])
    except Exception:  # composing reports it, with Hydra's message
        return False
    return parsed.is_sweep_override()


def config_groups(config_dir: Path, keys: list[str]) -> set[str]:
    """Those of ``keys`` that name config groups of ``config_dir``, as Hydra knows them."""
    with initialize_config_dir(str(config_dir.resolve())):
        loader = GlobalHydra.instance().config_loader()
        return {key for key in keys if loader.get_group_options(key)}


def to_yaml(definition: dict[str, Any], command_line: str) -> str:
    header = f"# W&B Sweeps definition, generated by: {command_line}\n"
    return header + yaml.safe_dump(definition, sort_keys=False, width=100)
