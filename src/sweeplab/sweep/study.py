"""The study as sweeplab stores it: the attribute names every worker, report and tool reads,
and the outcomes a worker records. One place, so the storage layout is defined once."""

from __future__ import annotations

import contextlib
import logging
import math
import warnings
from typing import Any

import optuna
from hydra.core.utils import JobReturn, JobStatus
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState

log = logging.getLogger(__name__)

# Study user attributes.
BASE_OVERRIDES = "base_overrides"  # what every trial's overrides apply to (model, objective, ...)

# Trial user attributes.
OVERRIDES = "overrides"  # the sampled overrides that reproduce the trial's configuration
ERROR = "error"  # why the trial failed
DUPLICATE_OF = "duplicate_of"  # an earlier complete trial with the same parameters
WORKER = "worker"  # host:pid (and SLURM job) of the worker that ran the trial
SURPLUS = "surplus"  # asked by a worker after the study had its n_trials: never run
EPOCHS = "epochs"  # validation epochs run, where Optuna keeps no per-epoch values

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)  # what counts towards n_trials
LOST_WORKER = "its worker stopped sending heartbeats (killed, out of memory or node lost)"


def count(study: optuna.Study, *states: TrialState) -> int:
    return len(study.get_trials(deepcopy=False, states=states))


def count_finished(study: optuna.Study) -> int:
    return count(study, *FINISHED)


def epochs_run(trial: FrozenTrial) -> int:
    """Validation epochs the trial ran (its reported values, or the count kept for a
    multi-objective trial, which Optuna takes no per-epoch values from)."""
    return len(trial.intermediate_values) or int(trial.user_attrs.get(EPOCHS, 0))


def retry_of(trial: FrozenTrial) -> int | None:
    """The trial a heartbeat retry re-runs (Optuna records it), or ``None``."""
    with warnings.catch_warnings():  # experimental since Optuna 2.8, still public
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return RetryHeartbeatStaleTrialCallback.retried_trial_number(trial)


def error_of(trial: FrozenTrial) -> str | None:
    """Why a failed trial failed, or ``None`` for one that did not fail or was never run."""
    if trial.state != TrialState.FAIL or trial.user_attrs.get(SURPLUS):
        return None
    return trial.user_attrs.get(ERROR, LOST_WORKER)


def ran(trial: FrozenTrial) -> bool:
    """Whether the trial was trained (not a reused duplicate, not a surplus ask)."""
    return DUPLICATE_OF not in trial.user_attrs and not trial.user_attrs.get(SURPLUS)


def failures_since(study: optuna.Study, first_number: int) -> list[FrozenTrial]:
    """Trials from ``first_number`` on that failed with an error of their own (a lost worker
    is retried instead, and is not the configuration's fault)."""
    return [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
        if t.number >= first_number and ERROR in t.user_attrs
    ]


def record(study: optuna.Study, trial: optuna.Trial, job: JobReturn) -> str | None:
    """Record a finished job's outcome on its trial; return the error of a failed one."""
    error: str | None = None
    try:
        values = _as_floats(job.return_value)  # re-raises the job's exception, if any
        if values is None or len(values) != len(study.directions):
            error = (
                f"the objective is {job.return_value!r}, but the study wants "
                f"{len(study.directions)} finite number(s) (optimized_metric)"
            )
    except optuna.TrialPruned:
        tell(study, trial, state=TrialState.PRUNED)
        return None
    except Exception as e:
        error = f"{type(e).__name__}: {e}"
    if job.status == JobStatus.COMPLETED and error is None:
        tell(study, trial, values=values)
        return None
    with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
        trial.set_user_attr(ERROR, error)  # unless failed already by a heartbeat check
    tell(study, trial, state=TrialState.FAIL)
    log.warning("Trial %d failed: %s", trial.number, error)
    return error


def reuse_twin(study: optuna.Study, trial: optuna.Trial) -> bool:
    """Complete ``trial`` with the value(s) of an earlier complete trial with the same
    parameters, if there is one, instead of training it again.

    Samplers of discrete spaces propose repeats once they converge; with a fixed seed a
    repeat would train to the same result, so it costs no compute here.
    """
    params = trial.params
    for twin in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if twin.params == params:
            trial.set_user_attr(DUPLICATE_OF, twin.number)
            tell(study, trial, values=twin.values)
            log.info("Trial %d repeats trial %d: its value is reused", trial.number, twin.number)
            return True
    return False


def tell(study: optuna.Study, trial: optuna.Trial, **outcome: Any) -> None:
    # A trial whose heartbeats came late may have been failed (and its retry queued) by
    # another worker's check: its outcome is then dropped rather than recorded twice.
    try:
        study.tell(trial, skip_if_finished=True, **outcome)
    except RuntimeError as e:
        # The grid sampler calls study.stop() once the grid is done, which only works inside
        # study.optimize(); the trial is recorded by then, and n_trials ends the sweep anyway.
        if "Study.stop" not in str(e):
            raise


def _as_floats(value: Any) -> list[float] | None:
    """A run's objective value(s) as finite floats, or ``None`` if they are not."""
    try:
        values = [float(v) for v in value] if isinstance(value, list | tuple) else [float(value)]
    except (TypeError, ValueError):
        return None
    return values if all(math.isfinite(v) for v in values) else None
