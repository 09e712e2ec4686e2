"""sweeplab's Optuna sweeper, on Hydra's public ``Sweeper`` plugin API and Optuna's public API.

Over the stock Hydra Optuna sweeper it adds: several workers on one study (local processes,
machines sharing a PostgreSQL or journal storage, SLURM jobs), ``n_trials`` as the study's
total, dead workers detected by Optuna's heartbeat and their trials retried, pruning
(``hydra/sweeper/pruner=...``), per-layer search spaces (``hydra.sweeper.layers``), failed
trials that stop the sweep only past ``max_failure_rate``, progress lines and reports.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from hydra.utils import get_method, instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf

from sweeplab.config import objectives
from sweeplab.errors import ConfigError, SweeplabError, exit_with
from sweeplab.outputs import writable_dir
from sweeplab.redaction import redact
from sweeplab.sweep import report, workers
from sweeplab.sweep import study as stored
from sweeplab.sweep.progress import SweepProgress
from sweeplab.sweep.space_check import check_space
from sweeplab.sweep.spaces import LayerSpace, SearchSpace, base_overrides, format_override
from sweeplab.sweep.storage import Heartbeat, open_storage
from sweeplab.sweep.wandb_study import log_study, wandb_settings
from sweeplab.sweep.worker import Budget, Worker

log = logging.getLogger(__name__)

DIRECTIONS = {"min": "minimize", "max": "maximize", "minimize": "minimize", "maximize": "maximize"}


class SweeplabOptunaSweeper(Sweeper):
    """The Hydra plugin: checks the settings, opens the study, then runs the worker loop here
    or starts ``workers`` workers (``cluster=None``: local processes; else SLURM jobs)."""

    def __init__(
        self,
        sampler: DictConfig,
        direction: Any,
        storage: str,
        study_name: str,
        n_trials: int,
        n_jobs: int = 1,
        max_failure_rate: float = 0.25,
        params: DictConfig | None = None,
        custom_search_space: str | None = None,
        pruner: DictConfig | None = None,
        layers: DictConfig | None = None,
        workers: int = 1,
        workers_per_gpu: int = 1,
        heartbeat: DictConfig | None = None,
        cluster: DictConfig | None = None,
    ) -> None:
        self.settings = dict(
            direction=direction,
            storage=storage,
            study_name=study_name,
            n_trials=n_trials,
            n_jobs=n_jobs,
            max_failure_rate=max_failure_rate,
            workers=workers,
            workers_per_gpu=workers_per_gpu,
        )
        self.sampler_config = sampler
        self.pruner_config = pruner
        self.params = params or {}
        self.custom_search_space = custom_search_space
        self.layers_config = layers
        self.heartbeat_config = heartbeat or {}
        self.cluster_config = cluster
        self.config: DictConfig | None = None

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            config=config, hydra_context=hydra_context, task_function=task_function
        )

    def sweep(self, arguments: list[str]) -> None:
        try:
            self._sweep(arguments)
        except SweeplabError as e:  # one paragraph for the user, not Hydra's traceback
            exit_with(e)

    def _sweep(self, arguments: list[str]) -> None:
        assert self.config is not None
        s = check_settings(self.settings)
        metric_names = _check_objectives(s["directions"], self.config)
        if len(s["directions"]) > 1:
            _check_multi_objective(self.pruner_config, self.sampler_config)
        heartbeat = _heartbeat(self.heartbeat_config)
        space = SearchSpace.from_overrides(
            [format_override(str(k), v) for k, v in self.params.items()] + list(arguments),
            layers=LayerSpace.from_config(self.layers_config) if self.layers_config else None,
            extend=_extender(self.custom_search_space),
        )
        if workers.worker_index() is None:  # once per sweep, by the command itself
            check_space(space, self.config, self._trial_composer(space))
        with warnings.catch_warnings():  # e.g. TPE's `group`: experimental, and what we want
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            sampler, n_trials = self._sampler(space, s["n_trials"])
        pruner = build_pruner(self.pruner_config)
        sweep_dir = writable_dir(Path(self.config.hydra.sweep.dir))
        storage = open_storage(s["storage"], heartbeat)
        study = optuna.create_study(
            study_name=s["study_name"],
            storage=storage,
            sampler=sampler,
            pruner=pruner,
            directions=s["directions"],
            load_if_exists=True,
        )
        with warnings.catch_warnings():  # metric names: experimental since Optuna 3.2
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            if metric_names:  # shown by reports and optuna-dashboard
                study.set_metric_names(metric_names)
        index = workers.worker_index()
        if study.trials or index is not None:
            # A resumed sweep, or one worker of several: a seeded sampler would replay the
            # proposals of the first run, or of the other workers.
            study.sampler.reseed_rng()
        budget = Budget(n_trials, s["n_jobs"], s["max_failure_rate"])
        if index is None:
            study.set_user_attr(stored.BASE_OVERRIDES, base_overrides(self.config, space))
            log.info(
                "Study %s in %s: %d of %d trials finished; sampler %s, pruner %s, %d worker(s)",
                study.study_name,
                redact(s["storage"]),
                stored.count_finished(study),
                n_trials,
                type(study.sampler).__name__,
                type(study.pruner).__name__,
                s["workers"],
            )
        try:
            if index is not None or (s["workers"] == 1 and self.cluster_config is None):
                Worker(
                    study,
                    storage,
                    space,
                    lambda batch, first: self.launcher.launch(batch, initial_job_idx=first),
                    budget,
                    config=self.config,
                    reuse_repeats=self.config.get("seed") is not None,
                ).run()
            else:
                self._start_workers(study, sweep_dir, s, budget)
        finally:
            if index is None:  # the workers' parent writes the reports once, at the end
                plots = report.write_all(study, sweep_dir)
                settings = wandb_settings(self.config)
                if settings is not None:
                    log_study(study, sweep_dir, plots, settings, s["storage"])
        if index is None:
            log.info("Results in %s", sweep_dir)

    def _trial_composer(self, space: SearchSpace) -> Callable[[list[str]], DictConfig]:
        """A function that composes a trial's config from the sweep's fixed overrides and
        ``extra`` ones, as the launcher will (Hydra's public plugin API)."""

        def compose(extra: list[str]) -> DictConfig:
            return self.hydra_context.config_loader.load_sweep_config(
                self.config, [*space.fixed, *extra]
            )

        return compose

    def _start_workers(
        self, study: optuna.Study, sweep_dir: Path, s: dict[str, Any], budget: Budget
    ) -> None:
        progress = SweepProgress(study, budget.n_trials)
        command = workers.worker_command(sweep_dir)
        if self.cluster_config is None:
            codes = workers.run_local(
                command,
                workers.local_environments(s["workers"], s["workers_per_gpu"]),
                sweep_dir / "workers",
                progress.poll,
            )
            errors = [
                workers.describe_exit(k, code, sweep_dir / "workers" / f"worker_{k}.log")
                for k, code in enumerate(codes)
                if code != 0
            ]
        else:
            slurm = workers.Slurm(**OmegaConf.to_container(self.cluster_config, resolve=True))
            if s["storage"].startswith("sqlite"):
                log.warning(
                    "SLURM workers on a SQLite file: fine on one node, unreliable on a shared "
                    "filesystem; use a PostgreSQL storage (README: Scaling out)."
                )
            errors = workers.run_slurm(
                command, s["workers"], slurm, sweep_dir / "slurm", study.study_name, progress.poll
            )
        finished = stored.count_finished(study)
        if finished < budget.n_trials:
            raise workers.WorkersFailed(
                f"The workers stopped with {finished} of {budget.n_trials} trials finished. "
                + " ".join(redact(e) for e in errors)
                + " Finished trials are kept; fix the cause, then run the same command again "
                "to resume."
            )
        for error in errors:
            log.warning("A worker ended badly, the others finished the study: %s", redact(error))

    def _sampler(self, space: SearchSpace, n_trials: int) -> tuple[Any, int]:
        sampler = _instantiate(self.sampler_config, "hydra.sweeper.sampler", "optuna.samplers.*")
        if getattr(sampler, "func", None) is optuna.samplers.GridSampler:
            grid = space.grid()
            size = 1
            for values in grid.values():
                size *= len(values)
            log.info("Grid sampler: n_trials=%d (at most the grid's size)", min(n_trials, size))
            return sampler(grid), min(n_trials, size)
        return sampler, n_trials


def build_pruner(node: DictConfig | None) -> optuna.pruners.BasePruner | None:
    if not node:
        return None
    pruner = _instantiate(node, "hydra.sweeper.pruner", "optuna.pruners.*")
    if isinstance(pruner, optuna.pruners.HyperbandPruner):
        # Hyperband builds its successive-halving brackets at the first report, so a setting
        # they refuse (reduction_factor=1) would fail trials mid-sweep: build one now, for
        # Optuna's own check.
        bracket = {k: node[k] for k in ("min_resource", "reduction_factor") if k in node}
        try:
            optuna.pruners.SuccessiveHalvingPruner(**bracket)
        except ValueError as e:
            raise ConfigError(
                f"Invalid config at `hydra.sweeper.pruner`: {str(e).rstrip('.')}. Hyperband "
                "runs brackets of successive halving with these settings; its defaults are "
                "min_resource: 1, reduction_factor: 3."
            ) from None
    return pruner


def check_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """The sweeper's settings, checked before the first trial; a bad one is named."""
    s = dict(settings)
    for key in ("n_trials", "n_jobs", "workers", "workers_per_gpu"):
        value = s[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(
                f"`hydra.sweeper.{key}`={value!r} is invalid: use a positive integer."
            )
    rate = s["max_failure_rate"]
    if not isinstance(rate, int | float) or isinstance(rate, bool) or not 0 <= rate <= 1:
        raise ConfigError(
            f"`hydra.sweeper.max_failure_rate`={rate!r} is invalid: use a number from 0 (stop "
            "at the first failed trial) to 1 (never stop for failures)."
        )
    direction = s.pop("direction")
    given = list(direction) if isinstance(direction, ListConfig | list | tuple) else [direction]
    if not given or any(str(d).lower() not in DIRECTIONS for d in given):
        raise ConfigError(
            f"`hydra.sweeper.direction`={direction!r} is invalid: use minimize or maximize, or "
            "a list of them, one per objective (objective=acc_vs_params sets both)."
        )
    s["directions"] = [DIRECTIONS[str(d).lower()] for d in given]
    if not isinstance(s["storage"], str) or not s["storage"]:
        raise ConfigError(
            "`hydra.sweeper.storage` is empty: give an Optuna storage URL such as "
            "sqlite:///study.db, postgresql://user@host/db or journal:///shared/study.log."
        )
    if s["workers"] > 1 and s["storage"].startswith("sqlite:///:memory:"):
        raise ConfigError(
            "An in-memory storage cannot be shared by several workers: use a file or server "
            "URL in hydra.sweeper.storage."
        )
    return s


def _heartbeat(node: Any) -> Heartbeat:
    heartbeat = Heartbeat(**dict(node)) if node else Heartbeat()
    if heartbeat.interval < 1 or heartbeat.grace_period <= heartbeat.interval:
        raise ConfigError(
            f"`hydra.sweeper.heartbeat`: interval={heartbeat.interval}, grace_period="
            f"{heartbeat.grace_period} is invalid: the interval must be at least 1 second and "
            "the grace period longer than the interval (say 10 and 30)."
        )
    if heartbeat.max_retry < 0:
        raise ConfigError(
            f"`hydra.sweeper.heartbeat.max_retry`={heartbeat.max_retry} is invalid: use 0 or more."
        )
    return heartbeat


def _check_objectives(directions: list[str], config: DictConfig) -> list[str]:
    """The study must optimise the run's objectives, each the way the run ranks it; returns
    the objectives' metric names."""
    if config.get("optimized_metric") is None:  # another Hydra app: its return value decides
        return []
    metrics, wanted = objectives(config)
    expected = [DIRECTIONS.get(str(d), str(d)) for d in wanted]
    if directions != expected:
        raise ConfigError(
            f"`hydra.sweeper.direction`={directions} contradicts the objective: "
            f"optimized_metric={metrics} is best {', '.join(expected)}d "
            f"(optimized_direction={wanted}). Leave the direction to follow the objective, or "
            "switch the objective (objective=val_acc|val_loss|acc_vs_params|acc_vs_latency)."
        )
    return [str(m) for m in metrics]


def _check_multi_objective(pruner: DictConfig | None, sampler: DictConfig | None) -> None:
    if pruner:
        raise ConfigError(
            "Optuna cannot prune a trial of a multi-objective study (it has no single value "
            "to compare per epoch), so hydra/sweeper/pruner must be none: drop the pruner "
            "override, or optimise one objective."
        )
    if sampler and "CmaEs" in str(sampler.get("_target_", "")):
        raise ConfigError(
            "The CMA-ES sampler optimises one objective, but this sweep has several: use "
            "hydra/sweeper/sampler=nsgaii (the usual choice), tpe, gp or random."
        )


def _extender(path: str | None) -> Any:
    if not path:
        return None
    try:
        return get_method(path)
    except Exception as e:
        raise ConfigError(
            f"`hydra.sweeper.custom_search_space`={path!r} cannot be imported ({e}): give the "
            "dotted path of a function(cfg, trial) on the Python path."
        ) from None


def _instantiate(node: DictConfig, key: str, allowed: str) -> Any:
    try:
        return instantiate(node, _execution_whitelist_=(allowed,))
    except Exception as e:
        raise ConfigError(
            f"Invalid config at `{key}`: {e}. Pick one of the options of the "
            f"{key.replace('.', '/')} group."
        ) from None
