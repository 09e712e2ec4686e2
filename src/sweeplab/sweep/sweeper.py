"""sweeplab's Optuna sweeper, on Hydra's public ``Sweeper`` plugin API and Optuna's public API.

Over the stock Hydra Optuna sweeper it adds: several workers on one study (local processes,
machines sharing a PostgreSQL or journal storage, SLURM jobs), ``n_trials`` as the study's
total, dead workers detected by Optuna's heartbeat and their trials retried, pruning
(``hydra/sweeper/pruner=...``), per-layer search spaces (``hydra.sweeper.layers``), failed
trials that stop the sweep only past ``max_failure_rate``, progress lines and reports.

Hydra imports every plugin it discovers when any Hydra app starts, so this module imports
nothing heavy: Optuna, torch, Lightning, W&B and matplotlib load inside :meth:`sweep`.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, NoReturn

from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn, JobStatus
from hydra.plugins.launcher import Launcher
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

if TYPE_CHECKING:
    from sweeplab.signals import Stopped
    from sweeplab.sweep.roles import Sweep
    from sweeplab.sweep.worker import Launch

__all__ = ["SweeplabOptunaSweeper"]


class SweeplabOptunaSweeper(Sweeper):
    """The Hydra plugin: checks the settings (``hydra.sweeper.*``), then runs the sweep
    command, or, in a process the command started, one of its workers."""

    def __init__(self, **settings: Any) -> None:
        self.settings = settings
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.launcher: Launcher | None = None

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            config=config, hydra_context=hydra_context, task_function=task_function
        )

    def sweep(self, arguments: list[str]) -> None:
        from sweeplab import process, quiet, signals
        from sweeplab.errors import USER_ERRORS, exit_with, user_error
        from sweeplab.sweep import roles, workers
        from sweeplab.sweep.settings import SweepSettings

        assert self.config and self.hydra_context and self.launcher, "Hydra calls setup first"
        config = self.config
        loader = self.hydra_context.config_loader
        worker_index = workers.worker_index()
        sweep: roles.Sweep | None = None
        try:
            with signals.stopping(), quiet.known_noise(), process.log_write_errors_dropped():
                sweep = roles.open_sweep(
                    SweepSettings.from_kwargs(self.settings),
                    config,
                    arguments,
                    lambda overrides: loader.load_sweep_config(config, overrides),
                    lambda key: bool(loader.get_group_options(key)),
                    check_values=worker_index is None,  # once per sweep, by the command
                )
                role = roles.run_command if worker_index is None else roles.run_worker
                role(sweep, self._launch(sweep))
        except USER_ERRORS as e:  # one paragraph for the user, not Hydra's traceback
            exit_with(user_error(e))
        except signals.Stopped as stop:
            _exit_stopped(sweep, stop)

    def _launch(self, sweep: Sweep) -> Launch:
        """The launcher's ``launch``; trials that a signal stops are requeued at once, before
        the reports are written."""
        from sweeplab import quiet, signals
        from sweeplab.errors import ConfigError
        from sweeplab.sweep import workers

        launcher = self.launcher
        assert launcher is not None, "Hydra calls setup first"

        def launch(batch: Sequence[Sequence[str]], first: int) -> Sequence[JobReturn]:
            try:
                with quiet.launching():  # the trials' lines, not the launcher's job lists
                    returns = launcher.launch(batch, initial_job_idx=first)
                return [_pruned_quietly(job) for job in returns]
            except BaseException as e:
                if signals.as_stopped(e) is not None:
                    workers.requeue_interrupted(sweep.study, sweep.storage)
                    raise
                if isinstance(e, OSError):
                    # Hydra could not write the trials' own files (a full or read-only disk):
                    # they fail with that reason, which max_failure_rate weighs like any other.
                    return [JobReturn(status=JobStatus.FAILED, _return_value=e) for _ in batch]
                if isinstance(e, Exception):  # a trial's own errors come back in its JobReturn
                    raise ConfigError(
                        f"The launcher ({type(launcher).__name__}) refused to start trials: "
                        f"{type(e).__name__}: {e}. Check its settings (hydra.launcher.*, e.g. "
                        "n_jobs >= 1), or drop hydra/launcher to run trials in the worker."
                    ) from None
                raise

        return launch


@dataclass
class _PrunedJob(JobReturn):
    """A pruned trial's job: reading its value raises the ``TrialPruned``, as Hydra's own
    does, but without Hydra's "Error executing job" line: pruning is not an error."""

    pruned: BaseException | None = None

    @property  # type: ignore[override]
    def return_value(self) -> Any:
        raise self.pruned  # type: ignore[misc]


def _pruned_quietly(job: JobReturn) -> JobReturn:
    """``job``, or a :class:`_PrunedJob` in its place if its trial was pruned; a failed job's
    error line is left for the worker to print as it reads the job."""
    import optuna

    if job.status is not JobStatus.FAILED:
        return job
    with contextlib.redirect_stderr(io.StringIO()):  # Hydra writes its line as it re-raises
        try:
            _ = job.return_value
        except optuna.TrialPruned as pruned:
            return _PrunedJob(**{f.name: getattr(job, f.name) for f in fields(job)}, pruned=pruned)
        except BaseException:  # a real error: the worker reads it again, line included
            pass
    return job


def _exit_stopped(sweep: Sweep | None, stop: Stopped) -> NoReturn:
    """A sweep process stopped by a signal: its running trials requeued, one line, exit."""
    from sweeplab import signals
    from sweeplab.redaction import redact
    from sweeplab.sweep import queries, workers

    if sweep is None:
        signals.exit_stopped(
            stop, f"Interrupted by {stop.name} before the study was opened; nothing ran."
        )
    workers.requeue_interrupted(sweep.study, sweep.storage)
    finished = queries.count_finished(sweep.study)
    storage = redact(sweep.settings.storage)
    signals.exit_stopped(stop, signals.sweep_line(finished, sweep.budget.n_trials, storage))
