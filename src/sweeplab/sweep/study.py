"""The study as sweeplab stores it: the attribute names every worker, report and tool reads,
and the outcomes a worker records. One place, so the storage layout is defined once; reading
a study is queries.py's."""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Sequence
from typing import Any

import optuna
from hydra.core.utils import JobReturn, JobStatus
from optuna.trial import FrozenTrial, TrialState

__all__ = [
    "BASE_OVERRIDES",
    "CUSTOM_SEARCH_SPACE",
    "DEADLINE",
    "DUPLICATE_OF",
    "ENDED_BY",
    "EPOCHS",
    "EPOCHS_LOST",
    "ERROR",
    "MODEL_PARAMS",
    "OUTCOME",
    "OVERRIDES",
    "RESUMED_FROM",
    "SEARCH_SPACES",
    "STOPPED_BY",
    "SURPLUS",
    "WANDB_RUN_ID",
    "WARM_START",
    "WORKER",
    "keep_outcome",
    "kept_outcome",
    "record",
    "reuse_outcome",
    "reuse_twin",
    "tell",
]

log = logging.getLogger(__name__)

# Study user attributes, written when the study is created (identity.py) and never rewritten.
BASE_OVERRIDES = "base_overrides"  # what every trial's overrides apply to (model, objective, ...)
SEARCH_SPACES = "search_spaces"  # the space as created, then each widening: [{name: json}, ...]
CUSTOM_SEARCH_SPACE = "custom_search_space"  # the dotted path of a custom space, if any
# Study user attributes that each sweep command sets anew (stopping.py).
DEADLINE = "deadline"  # when this command's time budget ends (UNIX time), or None
STOPPED_BY = "stopped_by"  # why the sweep stopped before n_trials, or None

# Trial user attributes.
OVERRIDES = "overrides"  # the sampled overrides that reproduce the trial's configuration
ERROR = "error"  # why the trial failed
ENDED_BY = "ended_by"  # why a trial was ended from outside (a stop, a dead worker's lease)
# an earlier trial with the same parameters whose value(s) this one reuses: a complete twin, or
# the failed trial a retry records the kept outcome of
DUPLICATE_OF = "duplicate_of"
WORKER = "worker"  # host:pid (and SLURM job) of the worker that ran the trial
SURPLUS = "surplus"  # asked by a worker after the study had its n_trials: never run
EPOCHS = "epochs"  # validation epochs run, where Optuna keeps no per-epoch values
MODEL_PARAMS = "model_params"  # the trained model's parameter count
WARM_START = "warm_start"  # copied from another study (hydra.sweeper.warm_start): from where
RESUMED_FROM = "resumed_from"  # the failed trial whose last-epoch checkpoint this one went on from
EPOCHS_LOST = "epochs_lost"  # epochs that failed trial trained after its last checkpoint
WANDB_RUN_ID = "wandb_run_id"  # the trial's W&B run, which a trial resuming it continues
OUTCOME = "outcome"  # the value(s) a finished run kept on its trial before its worker told them


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
    except optuna.exceptions.UpdateFinishedTrialError:
        # The run found its trial finished: its worker was silent (stopped, hung) past the
        # heartbeat's grace period, and the trial was failed and queued again meanwhile.
        log.warning(
            "Trial %d was failed by a heartbeat check while its worker was silent; its retry "
            "runs it, and this run's outcome is dropped.",
            trial.number,
        )
        tell(study, trial, state=TrialState.FAIL)  # skipped: finished already
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
            # the trial's progress line says so; this one is for the worker's debug log
            log.debug("Trial %d repeats trial %d: its value is reused", trial.number, twin.number)
            return True
    return False


def keep_outcome(trial: optuna.Trial, values: float | Sequence[float]) -> None:
    """Keep a finished run's value(s) on its trial, before its worker tells them: a stop or a
    dead worker in between then records them (:func:`kept_outcome`) instead of training the
    trial again."""
    trial.set_user_attr(OUTCOME, list(values) if isinstance(values, Sequence) else [values])


def kept_outcome(trial: FrozenTrial | optuna.Trial) -> list[float] | None:
    """The value(s) that ``trial``'s run kept (:func:`keep_outcome`), or ``None``."""
    return _as_floats(trial.user_attrs[OUTCOME]) if OUTCOME in trial.user_attrs else None


def reuse_outcome(study: optuna.Study, trial: optuna.Trial, failed: int) -> bool:
    """Complete ``trial``, the heartbeat retry of trial ``failed``, with the value(s) that
    trial's run kept (copied with the retry's attributes): that run finished, and only its
    worker died before telling them, so there is nothing to train again."""
    values = kept_outcome(trial)
    if values is None:
        return False
    trial.set_user_attr(DUPLICATE_OF, failed)
    tell(study, trial, values=values)
    log.info("Trial %d records the value(s) trial %d's run finished with", trial.number, failed)
    return True


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
