"""Overrides read back from files and servers (a sweep directory's results, a study's stored
attributes, a W&B sweep's arguments) are data anyone who shares the directory or the sweep may
have written. Before they reach Hydra, each must be one of the study's base overrides or a
sampled parameter inside the study's search space, and none may name a ``_target_``,
interpolate (``${``) or set Hydra itself.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from optuna.distributions import BaseDistribution, CategoricalDistribution

from sweeplab.errors import ConfigError
from sweeplab.overrides import format_override, override_key
from sweeplab.sweep.spaces import override_key_of

__all__ = ["RESULTS_FIX", "WANDB_SWEEP_FIX", "check_plain", "check_recorded"]

HYDRA_KEYS_ALLOWED = ("hydra.searchpath",)  # where a plug-in's configs are: a base override
RESULTS_FIX = (
    "A sweep writes only its base overrides and sampled parameters there; this file or study "
    "was edited by hand or comes from elsewhere. Retrain with the overrides you trust on the "
    "command line instead, or re-run the sweep to rewrite its results."
)
WANDB_SWEEP_FIX = (
    "A W&B sweep's parameters are plain key=value overrides of the search space: fix the "
    "sweep's parameters (sweeps/*.yaml, written by sweeplab wandb-sweep) and start it again."
)


def check_plain(
    overrides: Sequence[str],
    source: str,
    fix: str = RESULTS_FIX,
    trusted: Callable[[str], bool] | None = None,
) -> None:
    """Refuse an override that could run code or read the environment, whatever the study;
    ``fix`` says what to do instead. A ``_target_`` is refused, unless ``trusted`` accepts every
    one it names (a W&B sweep passes a config group's option as its node, target included,
    and such a node may name only what configs may instantiate)."""
    for override in overrides:
        key = override_key(override)
        named = re.findall(r"_target_\s*[:=]\s*['\"]?([^,}'\"\s]*)", override)
        if "_target_" in override and (
            trusted is None or not named or not all(trusted(name) for name in named)
        ):
            _refuse(override, source, "names a `_target_`, which decides what Python runs", fix)
        if "${" in override:
            _refuse(override, source, "interpolates (`${...}`), which reads the environment", fix)
        if key.split(".", 1)[0].split("/", 1)[0] == "hydra" and key not in HYDRA_KEYS_ALLOWED:
            _refuse(override, source, "sets Hydra itself (launchers, callbacks, jobs)", fix)


def check_recorded(
    overrides: Sequence[str],
    source: str,
    *,
    base: Sequence[str],
    params: Mapping[str, Any],
    space: Mapping[str, BaseDistribution] | None,
) -> None:
    """Each override is one of ``base`` or the override that trial parameters ``params`` make
    (a per-layer list from ``key[0]``, ``key[1]``, ...; a conditional parameter by its key),
    and each parameter lies in ``space`` (the study's recorded space, by parameter name;
    ``None`` for a study recorded before spaces were)."""
    check_plain(overrides, source)
    made = _overrides_made(params)
    for override in overrides:
        if override not in base and made.get(override_key(override)) != override:
            _refuse(
                override, source, "is neither a base override nor a sampled parameter", RESULTS_FIX
            )
    for name, value in params.items():
        distribution = _distribution(name, space)
        if space is not None and (distribution is None or not _contains(distribution, value)):
            shown = f"{name}={value}"
            _refuse(shown, source, "lies outside the study's search space", RESULTS_FIX)


def _overrides_made(params: Mapping[str, Any]) -> dict[str, str]:
    """The override each key gets from ``params``, as the search space formats it."""
    values: dict[str, Any] = {}
    for name, value in sorted(params.items(), key=lambda item: _layer_index(item[0])):
        key = override_key_of(name)
        if _layer_index(name) >= 0:
            values.setdefault(key, []).append(value)
        else:
            values[key] = value
    return {key: format_override(key, value) for key, value in values.items()}


def _layer_index(name: str) -> int:
    found = re.search(r"\[(\d+)\]$", name)
    return int(found[1]) if found else -1


def _distribution(
    name: str, space: Mapping[str, BaseDistribution] | None
) -> BaseDistribution | None:
    if space is None:
        return None
    return space.get(name) or space.get(re.sub(r"\[\d+\]$", "[i]", name))


def _contains(distribution: BaseDistribution, value: Any) -> bool:
    if isinstance(distribution, CategoricalDistribution):
        return value in distribution.choices
    try:
        return distribution.low <= float(value) <= distribution.high  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        return False


def _refuse(override: str, source: str, why: str, fix: str) -> None:
    raise ConfigError(f"`{override}` in {source} {why}, so sweeplab will not run it. {fix}")
