"""sweeplab's Optuna sweeper: Hydra's Optuna sweeper, extended.

Over the stock plugin it adds: pruning (``hydra/sweeper/pruner=...``), per-layer search spaces
(``hydra.sweeper.layers``), studies that resume (``n_trials`` is the total to reach, and
trials orphaned by a killed sweep run again), failed trials that do not stop the sweep until
``max_failure_rate`` of ``n_trials`` have failed, a progress line per trial, and reports.
Without a pruner and layers it samples and launches exactly as the plugin does.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
from hydra.core.utils import JobReturn, JobStatus
from hydra.utils import instantiate
from hydra_plugins.hydra_optuna_sweeper._impl import (
    OptunaSweeperImpl,
    create_params_from_overrides,
)
from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper
from omegaconf import DictConfig
from optuna.distributions import BaseDistribution
from optuna.trial import TrialState

from sweeplab.errors import ConfigError, SweeplabError
from sweeplab.sweep import report
from sweeplab.sweep.progress import SweepProgress, count_finished
from sweeplab.sweep.report import (
    BASE_OVERRIDES_ATTR,
    DUPLICATE_ATTR,
    ERROR_ATTR,
    OVERRIDES_ATTR,
)
from sweeplab.sweep.spaces import LayerSpace, format_override

log = logging.getLogger(__name__)

WORKER_ATTR = "sweeplab:worker"  # host:pid of the sweep process that launched a trial
# the sweep's direction may follow monitor_mode (min/max)
OPTUNA_DIRECTIONS = {"min": "minimize", "max": "maximize"}


class SweeplabOptunaSweeper(OptunaSweeper):
    """The Hydra plugin object; the work happens in :class:`StudyRunner`."""

    def __init__(
        self,
        sampler: Any,
        direction: Any,
        storage: str | None,
        study_name: str | None,
        n_trials: int,
        n_jobs: int,
        max_failure_rate: float,
        params: DictConfig | None,
        custom_search_space: str | None = None,
        pruner: Any = None,
        layers: DictConfig | None = None,
    ) -> None:
        self.sweeper = StudyRunner(
            sampler=instantiate(
                sampler,
                _execution_whitelist_=("optuna.samplers.*", "hydra_plugins.hydra_optuna_sweeper.*"),
            ),
            direction=OPTUNA_DIRECTIONS.get(direction, direction),
            storage=storage,
            study_name=study_name,
            n_trials=n_trials,
            n_jobs=n_jobs,
            max_failure_rate=max_failure_rate,
            custom_search_space=custom_search_space,
            params=params,
            pruner=instantiate(pruner, _execution_whitelist_=("optuna.pruners.*",))
            if pruner
            else None,
            layers=LayerSpace.from_config(layers) if layers else None,
        )


class StudyRunner(OptunaSweeperImpl):
    """Runs a study to ``n_trials`` finished (complete or pruned) trials."""

    def __init__(
        self,
        *,
        pruner: optuna.pruners.BasePruner | None,
        layers: LayerSpace | None,
        **plugin_kwargs: Any,
    ) -> None:
        super().__init__(**plugin_kwargs)
        self.pruner = pruner
        self.layers = layers

    # -- sampling ------------------------------------------------------------------------

    def _configure_trials(
        self,
        trials: list[optuna.Trial],
        search_space_distributions: dict[str, BaseDistribution],
        fixed_params: dict[str, Any],
        fixed_overrides: list[str],
    ) -> Sequence[Sequence[str]]:
        batch = []
        for trial in trials:
            for name, distribution in search_space_distributions.items():
                trial._suggest(name, distribution)
            layer_lists = self.layers.suggest(trial) if self.layers else {}
            if self.custom_search_space_extender:
                self.custom_search_space_extender(self.config, trial)
            # Per-layer parameters reach the run as lists; every other one as itself.
            sampled = [
                format_override(name, value)
                for name, value in trial.params.items()
                if not (self.layers and self.layers.owns(name))
            ]
            sampled += [format_override(key, values) for key, values in layer_lists.items()]
            trial.set_user_attr(OVERRIDES_ATTR, sampled)
            fixed = [format_override(name, value) for name, value in fixed_params.items()]
            batch.append((*sampled, *fixed, *fixed_overrides, f"trial_number={trial.number}"))
        return batch

    # -- the sweep -----------------------------------------------------------------------

    def sweep(self, arguments: list[str]) -> None:
        try:
            self._sweep(arguments)
        except SweeplabError as e:  # one paragraph for the user, not Hydra's traceback
            log.error("%s", e)
            print(f"\nError: {e}", file=sys.stderr)
            raise SystemExit(1) from None

    def _sweep(self, arguments: list[str]) -> None:
        self._process_searchspace_config()
        distributions, fixed_params, fixed_overrides = create_params_from_overrides(
            [*self._parse_sweeper_params_config(), *arguments]
        )
        for name in fixed_params:
            distributions.pop(name, None)
        self._prepare_grid(distributions)
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        study = optuna.create_study(
            study_name=self.study_name,
            storage=self.storage,
            sampler=self.sampler,
            pruner=self.pruner,
            directions=self._get_directions(),
            load_if_exists=True,
        )
        study.set_user_attr(BASE_OVERRIDES_ATTR, self._base_overrides())
        if study.trials:  # resuming: a seeded sampler would replay the first run's proposals
            study.sampler.reseed_rng()
        requeue_orphaned_trials(study)
        log.info(
            "Study %s in %s: %d of %d trials finished; sampler %s, pruner %s",
            study.study_name,
            self.storage,
            count_finished(study),
            self.n_trials,
            type(self.sampler).__name__,
            type(self.pruner).__name__ if self.pruner else "none",
        )
        progress = SweepProgress(study, self.n_trials)
        failures: list[str] = []
        try:
            while (to_go := self.n_trials - count_finished(study)) > 0:
                trials = [study.ask() for _ in range(min(self.n_jobs, to_go))]
                for trial in trials:
                    study._storage.set_trial_system_attr(
                        trial._trial_id, WORKER_ATTR, f"{socket.gethostname()}:{os.getpid()}"
                    )
                overrides = self._configure_trials(
                    trials, distributions, fixed_params, fixed_overrides
                )
                to_run = []
                for trial, trial_overrides in zip(trials, overrides, strict=True):
                    if self.config.get("seed") is not None and reuse_twin(study, trial):
                        progress.trial_finished(trial.number)
                    else:
                        to_run.append((trial, trial_overrides))
                if not to_run:
                    continue
                returns = self.launcher.launch(
                    [o for _, o in to_run], initial_job_idx=to_run[0][0].number
                )
                for (trial, _), job in zip(to_run, returns, strict=True):
                    error = tell(study, trial, job)
                    if error is not None:
                        failures.append(f"trial {trial.number}: {error}")
                    progress.trial_finished(trial.number)
                if len(failures) > self.max_failure_rate * self.n_trials:
                    raise SweepFailed(self._too_many_failures(failures))
        finally:
            report.write_all(study, sweep_dir)
        log.info("Results in %s", sweep_dir)

    def _prepare_grid(self, distributions: dict[str, BaseDistribution]) -> None:
        """The plugin's grid set-up: the grid is the product of the listed parameters."""
        if not (hasattr(self.sampler, "func") and self.sampler.func is optuna.samplers.GridSampler):
            return
        if self.layers or self.custom_search_space_extender:
            raise ConfigError(
                "The grid sampler needs every parameter in hydra.sweeper.params, but this "
                "search has per-layer parameters (hydra.sweeper.layers) or a "
                "custom_search_space: use hydra/sweeper/sampler=tpe, gp or random."
            )
        grid = {name: self._to_grid_sampler_choices(d) for name, d in distributions.items()}
        self.sampler = self.sampler(grid)
        self.n_trials = min(self.n_trials, math.prod(len(v) for v in grid.values()))
        log.info("Grid sampler: n_trials=%d (at most the grid's size)", self.n_trials)

    def _base_overrides(self) -> list[str]:
        # The model group that the sampled overrides apply to, for retraining the best trial.
        model = self.config.hydra.runtime.choices.get("model")
        return [f"model={model}"] if model else []

    def _too_many_failures(self, failures: list[str]) -> str:
        return (
            f"Stopping the sweep: {len(failures)} trials failed, more than "
            f"hydra.sweeper.max_failure_rate={self.max_failure_rate} of "
            f"n_trials={self.n_trials} allows. Last failure: {failures[-1]}. Finished "
            f"trials are kept in {self.storage}; fix the cause (see the trials' logs in "
            f"{self.config.hydra.sweep.dir}), then run the same command again to resume, or "
            "raise hydra.sweeper.max_failure_rate."
        )


class SweepFailed(SweeplabError):
    """More trials failed than the sweep tolerates."""


def tell(study: optuna.Study, trial: optuna.Trial, job: JobReturn) -> str | None:
    """Record a finished job's outcome on its trial; return the error for a failed one."""
    error: str | None = None
    if job.status == JobStatus.COMPLETED:
        value = _as_float(job.return_value)
        if value is None or not math.isfinite(value):
            error = f"the objective is {job.return_value!r}, not a finite number"
    else:
        exception = job._return_value
        if isinstance(exception, optuna.TrialPruned):
            _tell(study, trial, state=TrialState.PRUNED)
            return None
        error = f"{type(exception).__name__}: {exception}"
    if error is None:
        _tell(study, trial, values=[value])
        return None
    study._storage.set_trial_user_attr(trial._trial_id, ERROR_ATTR, error)
    _tell(study, trial, state=TrialState.FAIL)
    log.warning("Trial %d failed: %s", trial.number, error)
    return error


def reuse_twin(study: optuna.Study, trial: optuna.Trial) -> bool:
    """Complete ``trial`` with the value of an earlier complete trial with the same
    parameters, if there is one, instead of training it again.

    Samplers of discrete spaces propose repeats once they converge; with a fixed seed a
    repeat would train to the same result, so it costs no compute here.
    """
    params = study._storage.get_trial(trial._trial_id).params
    for twin in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if twin.params == params:
            study._storage.set_trial_user_attr(trial._trial_id, DUPLICATE_ATTR, twin.number)
            _tell(study, trial, values=[twin.value])
            log.info("Trial %d repeats trial %d: its value is reused", trial.number, twin.number)
            return True
    return False


def _tell(study: optuna.Study, trial: optuna.Trial, **outcome: Any) -> None:
    try:
        study.tell(trial, **outcome)
    except RuntimeError as e:
        # The grid sampler calls study.stop() once the grid is done, which only works inside
        # study.optimize(); the trial is recorded by then, and n_trials ends the sweep anyway.
        if "Study.stop" not in str(e):
            raise


def _as_float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def requeue_orphaned_trials(study: optuna.Study) -> list[int]:
    """Fail the RUNNING trials whose sweep process on this host is gone, and queue their
    parameters to run again. Trials of live sweeps (parallel workers) are left alone."""
    requeued = []
    host = socket.gethostname()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = trial.system_attrs.get(WORKER_ATTR)
        if worker is None:
            continue
        worker_host, _, pid = worker.rpartition(":")
        if worker_host != host or _process_alive(int(pid)):
            continue
        study._storage.set_trial_user_attr(
            trial._trial_id, ERROR_ATTR, f"its sweep process ({worker}) died"
        )
        study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})
        requeued.append(trial.number)
        log.warning("Trial %d was left running by a dead sweep: queued again", trial.number)
    return requeued


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
