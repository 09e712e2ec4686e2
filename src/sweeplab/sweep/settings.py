"""The sweeper's settings (``hydra.sweeper.*``) as a typed schema, checked once, before
anything is written; a bad value is one paragraph that names its key."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from sweeplab.errors import ConfigError

__all__ = ["DIRECTIONS", "Heartbeat", "Slurm", "SweepSettings", "optuna_direction"]

# What sweeplab's configs and users write, and what Optuna calls it.
DIRECTIONS = {"min": "minimize", "max": "maximize", "minimize": "minimize", "maximize": "maximize"}


def optuna_direction(direction: Any) -> str | None:
    """``min``/``max``/``minimize``/``maximize`` (any case) as Optuna's name; ``None`` if not
    a direction."""
    return DIRECTIONS.get(str(direction).lower())


@dataclass(frozen=True)
class Heartbeat:
    """Optuna's liveness check (``hydra.sweeper.heartbeat``): a running trial whose worker has
    not beaten for ``grace_period`` seconds is failed, and re-queued at most ``max_retry``
    times."""

    interval: int = 10
    grace_period: int = 30
    max_retry: int = 1

    def __post_init__(self) -> None:
        if self.interval < 1 or self.grace_period <= self.interval:
            raise ConfigError(
                f"`hydra.sweeper.heartbeat`: interval={self.interval}, grace_period="
                f"{self.grace_period} is invalid: the interval must be at least 1 second and "
                "the grace period longer than the interval (say 10 and 30)."
            )
        if self.max_retry < 0:
            raise ConfigError(
                f"`hydra.sweeper.heartbeat.max_retry`={self.max_retry} is invalid: use 0 or more."
            )


@dataclass(frozen=True)
class Slurm:
    """Where and how SLURM runs the workers (``hydra/sweeper/cluster=slurm``)."""

    partition: str | None = None
    gpus_per_worker: int = 1
    cpus_per_worker: int = 4
    mem_gb: int = 16
    timeout_min: int = 240
    additional_parameters: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SweepSettings:
    """Every ``hydra.sweeper`` setting. ``sampler``, ``pruner``, ``params`` and ``layers`` stay
    config nodes: they are built (and checked) with the search space."""

    directions: tuple[str, ...]
    storage: str
    study_name: str
    n_trials: int = 20
    n_jobs: int = 1
    max_failure_rate: float = 0.25
    workers: int = 1
    workers_per_gpu: int = 1
    heartbeat: Heartbeat = field(default_factory=Heartbeat)
    cluster: Slurm | None = None
    sampler: DictConfig | None = None
    pruner: DictConfig | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    layers: DictConfig | None = None
    custom_search_space: str | None = None

    @classmethod
    def from_config(cls, raw: Mapping[str, Any]) -> SweepSettings:
        """Check the sweeper's keyword arguments as Hydra passes them."""
        given = dict(raw)
        known = {f.name for f in fields(cls)} - {"directions"} | {"direction"}
        unknown = sorted(set(given) - known)
        if unknown:
            raise ConfigError(
                f"`hydra.sweeper` has no setting {', '.join(unknown)}: the settings are "
                f"{', '.join(sorted(known))} (configs/hydra/sweeper/sweeplab.yaml)."
            )
        for key in ("n_trials", "n_jobs", "workers", "workers_per_gpu"):
            value = given.get(key, 1)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(
                    f"`hydra.sweeper.{key}`={value!r} is invalid: use a positive integer."
                )
        rate = given.get("max_failure_rate", 0.25)
        if not isinstance(rate, int | float) or isinstance(rate, bool) or not 0 <= rate <= 1:
            raise ConfigError(
                f"`hydra.sweeper.max_failure_rate`={rate!r} is invalid: use a number from 0 "
                "(stop at the first failed trial) to 1 (never stop for failures)."
            )
        direction = given.pop("direction", None)
        listed = (
            list(direction) if isinstance(direction, ListConfig | list | tuple) else [direction]
        )
        directions = tuple(optuna_direction(d) for d in listed)
        if not directions or None in directions:
            raise ConfigError(
                f"`hydra.sweeper.direction`={direction!r} is invalid: use minimize or maximize, "
                "or a list of them, one per objective (objective=acc_vs_params sets both)."
            )
        storage = given.get("storage")
        if not isinstance(storage, str) or not storage:
            raise ConfigError(
                "`hydra.sweeper.storage` is empty: give an Optuna storage URL such as "
                "sqlite:///study.db, postgresql://user@host/db or journal:///shared/study.log."
            )
        if given.get("workers", 1) > 1 and storage.startswith("sqlite:///:memory:"):
            raise ConfigError(
                "An in-memory storage cannot be shared by several workers: use a file or server "
                "URL in hydra.sweeper.storage."
            )
        given["heartbeat"] = Heartbeat(**_plain(given.get("heartbeat")))
        if given.get("cluster"):
            given["cluster"] = _slurm(_plain(given["cluster"]))
        given["params"] = given.get("params") or {}
        return cls(directions=directions, **given)  # type: ignore[arg-type]


def _plain(node: Any) -> dict[str, Any]:
    if not node:
        return {}
    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else dict(node)


def _slurm(values: dict[str, Any]) -> Slurm:
    known = {f.name for f in fields(Slurm)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(
            f"`hydra.sweeper.cluster` has no setting {', '.join(unknown)}: the settings are "
            f"{', '.join(sorted(known))}; pass any other sbatch option in "
            "hydra.sweeper.cluster.additional_parameters."
        )
    return Slurm(**values)
