"""Overrides read back from files and servers (a sweep directory's results, a study's stored
attributes, a W&B sweep's arguments) are data anyone who shares the directory or the sweep may
have written. Before they reach Hydra, each must be one of the study's base overrides or a
sampled parameter inside the study's search space, and none may name a ``_target_``,
interpolate (``${``) or set Hydra itself.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from optuna.distributions import BaseDistribution, CategoricalDistribution

from sweeplab.errors import ConfigError
from sweeplab.overrides import format_override, override_key

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


def check_plain(overrides: Sequence[str], source: str, fix: str = RESULTS_FIX) -> None:
    """Refuse an override that could run code or read the environment, whatever the study;
    ``fix`` says what to do instead."""
    for override in overrides:
        key = override_key(override)
        if "_target_" in override:
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
    """Each override is one of ``base`` or the override of a sampled parameter in ``params``
    (a per-layer list from ``key[0]``, ``key[1]``, ...), whose value lies in ``space`` (the
    study's stored space; ``None`` for a study stored before spaces were)."""
    check_plain(overrides, source)
    for override in overrides:
        if override in base:
            continue
        key = override_key(override)
        values = _sampled(key, params)
        if values is None or override != format_override(key, values):
            _refuse(
                override, source, "is neither a base override nor a sampled parameter", RESULTS_FIX
            )
        for name, value in _named(key, values):
            distribution = _distribution(name, space)
            if space is not None and (distribution is None or not _contains(distribution, value)):
                _refuse(override, source, f"puts {name} outside the search space", RESULTS_FIX)


def _sampled(key: str, params: Mapping[str, Any]) -> Any:
    if key in params:
        return params[key]
    layers = [params[f"{key}[{i}]"] for i in range(len(params)) if f"{key}[{i}]" in params]
    return layers or None


def _named(key: str, values: Any) -> list[tuple[str, Any]]:
    if isinstance(values, list):
        return [(f"{key}[{i}]", value) for i, value in enumerate(values)]
    return [(key, values)]


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
