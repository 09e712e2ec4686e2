"""The sweeper's settings (``hydra.sweeper.*``) as a typed schema, checked once, before
anything is written; a bad value is one paragraph that names its key."""

from __future__ import annotations

import os
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from sweeplab.errors import ConfigError
from sweeplab.values import is_int, is_number

__all__ = [
    "DIRECTIONS",
    "Heartbeat",
    "Slurm",
    "SweepSettings",
    "cpu_cores",
    "local_capacity",
    "optuna_direction",
]

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
    max_retry: int = 3

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
    signal_delay_s: int = 90  # submitit's signal comes this long before the time limit
    max_num_timeout: int = 3  # requeues after reaching the time limit (preemptions: always)
    additional_parameters: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0 <= self.signal_delay_s < 60 * self.timeout_min:
            raise ConfigError(
                f"`hydra.sweeper.cluster.signal_delay_s`={self.signal_delay_s} is invalid: it "
                f"must be 0 or more and shorter than timeout_min={self.timeout_min} minutes "
                "(say 90: time to stop the worker and write its checkpoint)."
            )
        if self.max_num_timeout < 0:
            raise ConfigError(
                f"`hydra.sweeper.cluster.max_num_timeout`={self.max_num_timeout} is invalid: "
                "use 0 or more."
            )


@dataclass(frozen=True)
class SweepSettings:
    """Every ``hydra.sweeper`` setting. ``sampler``, ``pruner``, ``params``, ``layers`` and
    ``conditional`` stay config nodes: they are built (and checked) with the search space."""

    directions: tuple[str, ...]
    storage: str
    study_name: str
    n_trials: int = 20
    n_jobs: int = 1
    max_failure_rate: float = 0.25
    workers: int = 1
    workers_per_gpu: int = 1
    force_workers: bool = False
    heartbeat: Heartbeat = field(default_factory=Heartbeat)
    cluster: Slurm | None = None
    sampler: DictConfig | None = None
    pruner: DictConfig | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    layers: DictConfig | None = None
    conditional: DictConfig | None = None
    custom_search_space: str | None = None
    # stopping rules: the study's wall-clock budget and each trial's (seconds), finished
    # trials without improvement, and a value good enough to stop at
    timeout: float | None = None
    trial_timeout: float | None = None
    patience: int | None = None
    target: float | None = None
    # warm starts: override sets run first, and an earlier study whose trials seed this one
    enqueue: Sequence[Any] = ()
    warm_start: str | None = None
    warm_start_study: str | None = None

    @classmethod
    def from_kwargs(cls, kwargs: Mapping[str, Any]) -> SweepSettings:
        """Check the sweeper's keyword arguments, as Hydra passes them from ``hydra.sweeper``."""
        given = dict(kwargs)
        direction = given.pop("direction", None)
        several = isinstance(direction, ListConfig | list | tuple)
        directions = tuple(optuna_direction(d) for d in (direction if several else [direction]))
        if not directions or None in directions:
            raise ConfigError(
                f"`hydra.sweeper.direction`={direction!r} is invalid: use minimize or maximize, "
                "or a list of them, one per objective (objective=acc_vs_params sets both)."
            )
        given["directions"] = directions
        given["heartbeat"] = _build(Heartbeat, _plain(given.get("heartbeat")), "heartbeat")
        if given.get("cluster") is not None:
            given["cluster"] = _build(Slurm, _plain(given["cluster"]), "cluster")
        if given.get("params") is None:
            given["params"] = {}
        enqueue = given.get("enqueue")
        given["enqueue"] = () if enqueue is None else _plain_list(enqueue)
        settings = _build(cls, given, "")
        settings._check_values()
        return settings

    def _check_values(self) -> None:
        for key in ("n_trials", "n_jobs", "workers", "workers_per_gpu"):
            if getattr(self, key) < 1:
                raise ConfigError(
                    f"`hydra.sweeper.{key}`={getattr(self, key)!r} is invalid: use a positive "
                    "integer."
                )
        for key in ("timeout", "trial_timeout", "patience"):
            if (value := getattr(self, key)) is not None and value <= 0:
                raise ConfigError(
                    f"`hydra.sweeper.{key}`={value!r} is invalid: use a positive number, or "
                    "null for no limit."
                )
        if not 0 <= self.max_failure_rate <= 1:
            raise ConfigError(
                f"`hydra.sweeper.max_failure_rate`={self.max_failure_rate!r} is invalid: use a "
                "number from 0 (stop at the first failed trial) to 1 (never stop for failures)."
            )
        if not self.storage:
            raise ConfigError(
                "`hydra.sweeper.storage` is empty: give an Optuna storage URL such as "
                "sqlite:///study.db, postgresql://user@host/db or journal:///shared/study.log."
            )
        if self.workers > 1 and self.storage.startswith("sqlite:///:memory:"):
            raise ConfigError(
                "An in-memory storage cannot be shared by several workers: use a file or server "
                "URL in hydra.sweeper.storage."
            )
        self._check_machine()

    def _check_machine(self) -> None:
        """Local workers beyond what the machine runs at once would only fork until it
        refuses; a cluster queues its jobs instead, and a worker only joins the sweep."""
        from sweeplab.sweep.workers import worker_index  # it imports this module

        if self.workers == 1 or self.cluster is not None or self.force_workers:
            return
        if worker_index() is not None:  # it sees only its own GPU; the command checked
            return
        bound, what = local_capacity(self.workers_per_gpu)
        if self.workers > bound:
            raise ConfigError(
                f"`hydra.sweeper.workers`={self.workers} is more local workers than this "
                f"machine runs at once: {what}. Lower hydra.sweeper.workers, run them as SLURM "
                "jobs (hydra/sweeper/cluster=slurm), or set hydra.sweeper.force_workers=true to "
                "start them anyway."
            )


def local_capacity(workers_per_gpu: int) -> tuple[int, str]:
    """How many local workers this machine runs at once, and why: ``workers_per_gpu`` per GPU
    when it has GPUs (as ``workers.local_environments`` shares them out), else one per CPU
    core this process may use."""
    from sweeplab.sweep.workers import visible_gpus  # it imports this module, and torch

    if gpus := visible_gpus():
        bound = len(gpus) * workers_per_gpu
        return bound, f"{len(gpus)} GPU(s) × hydra.sweeper.workers_per_gpu={workers_per_gpu}"
    cores = cpu_cores()
    return cores, f"{cores} CPU core(s), one worker per core"


def cpu_cores() -> int:
    """The CPU cores this process may run on (its affinity where the OS tells it)."""
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity else os.cpu_count() or 1


def _build(cls: type, values: dict[str, Any], group: str) -> Any:
    """``cls(**values)``, each value checked against its field's type first; the errors name
    ``hydra.sweeper.<group>.<key>``."""
    where = ".".join(filter(None, ("hydra.sweeper", group)))
    if not isinstance(values, dict):
        raise ConfigError(
            f"`{where}`={values!r} is invalid: give its settings as key: value pairs."
        )
    known = {f.name: f for f in fields(cls)}
    if unknown := sorted(set(values) - set(known)):
        raise ConfigError(
            f"`{where}` has no setting {', '.join(unknown)}: its settings are "
            f"{', '.join(sorted(known))} (configs/hydra/sweeper/)."
        )
    required = [
        n for n, f in known.items() if f.default is MISSING and f.default_factory is MISSING
    ]
    if missing := [name for name in required if name not in values]:
        raise ConfigError(f"`{where}` lacks {', '.join(missing)} (configs/hydra/sweeper/).")
    hints = typing.get_type_hints(cls)
    for name, value in values.items():
        if not _fits(value, hints[name]):
            raise ConfigError(
                f"`{where}.{name}`={value!r} is invalid: use {_describe(hints[name])}."
            )
    return cls(**values)


def _fits(value: Any, hint: Any) -> bool:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return any(_fits(value, option) for option in typing.get_args(hint))
    origin = typing.get_origin(hint) or hint
    if hint is type(None):
        return value is None
    if hint is int:
        return is_int(value)
    if hint is float:
        return is_number(value)
    if origin is tuple:
        return isinstance(value, tuple)
    if origin is Sequence:
        return isinstance(value, list | tuple)
    if origin is Mapping or hint is DictConfig:
        return isinstance(value, Mapping)
    return isinstance(value, origin)


def _describe(hint: Any) -> str:
    names = {
        bool: "true or false",
        int: "an integer",
        float: "a number",
        str: "a string",
        type(None): "null",
    }
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    described = [
        names.get(option)
        or ("a mapping of key: value" if option in (DictConfig, Mapping) else None)
        or ("a mapping of key: value" if typing.get_origin(option) is Mapping else None)
        or ("a list" if typing.get_origin(option) is Sequence else None)
        or f"the settings of {getattr(option, '__name__', option)}"
        for option in options
    ]
    return " or ".join(described)


def _plain_list(node: Any) -> Any:
    """A list node as a plain list (anything else is kept, for the type check to name)."""
    if OmegaConf.is_config(node):
        return OmegaConf.to_container(node, resolve=True)
    return list(node) if isinstance(node, list | tuple) else node


def _plain(node: Any) -> Any:
    """A config node as plain values (a non-mapping is kept, for the type check to name)."""
    if node is None:
        return {}
    if OmegaConf.is_config(node):
        return OmegaConf.to_container(node, resolve=True)
    return dict(node) if isinstance(node, Mapping) else node
