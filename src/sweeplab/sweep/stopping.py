"""Why a study stops before ``n_trials``: its wall-clock budget (``hydra.sweeper.timeout``),
``patience`` (finished trials without a better value) or a ``target`` value reached.

Every worker checks the same rules against the same storage before it starts a trial, so one
worker or fifty stop alike. The budget's end is stored in the study by the sweep command, so
workers started later (a SLURM job queued for minutes) keep the command's clock; the reason
the study stopped is stored too, for the reports and for the command, which then knows that
an unfinished study was meant.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import optuna
from optuna.trial import FrozenTrial

from sweeplab.errors import ConfigError
from sweeplab.sweep import queries
from sweeplab.sweep import study as stored
from sweeplab.sweep.progress import format_number

__all__ = ["StoppingRules", "start_clock", "stop"]


@dataclass(frozen=True)
class StoppingRules:
    """The sweeper's stopping settings, checked against the study's objectives."""

    timeout: float | None = None  # seconds from the command's start
    patience: int | None = None  # finished trials without a better value
    target: float | None = None  # a value good enough to stop at

    def check(self, directions: list[str]) -> None:
        """``patience`` and ``target`` compare one value: refuse them for several objectives."""
        if len(directions) > 1 and (self.patience is not None or self.target is not None):
            raise ConfigError(
                "`hydra.sweeper.patience` and `hydra.sweeper.target` compare a trial's one "
                f"value, but this study has {len(directions)} objectives, where no trial is "
                "simply better: drop them (hydra.sweeper.timeout still applies), or optimise "
                "one objective."
            )

    def reason(self, study: optuna.Study, max_epochs: int | None) -> str | None:
        """Why no further trial should start, or ``None`` while the study goes on.
        ``max_epochs`` (the trials' epoch budget) lets the time budget predict a trial's
        length from the epochs measured so far."""
        best = queries.best_trial(study)
        if self.target is not None and best is not None and _reached(study, best, self.target):
            return (
                f"trial {best.number} reached {format_number(best.value, '.4g')}, the target "
                f"(hydra.sweeper.target={self.target})"
            )
        if self.patience is not None and best is not None:
            since = [t for t in _finished(study) if t.number > best.number]
            if len(since) >= self.patience:
                return (
                    f"{len(since)} finished trials since the best one (trial {best.number}) "
                    f"found nothing better (hydra.sweeper.patience={self.patience})"
                )
        deadline = queries.deadline(study)
        if deadline is None:
            return None
        left = deadline - time.time()
        predicted = _predicted_trial_s(study, max_epochs)
        if left <= 0 or (predicted is not None and predicted > left):
            ahead = f", less than a trial's predicted {predicted:.0f} s" if predicted else ""
            return (
                f"the time budget (hydra.sweeper.timeout={format_number(self.timeout, 'g')} s) "
                f"had {max(left, 0):.0f} s left{ahead}"
            )
        return None


def start_clock(study: optuna.Study, timeout: float | None, started: float) -> float | None:
    """Store the end of this command's time budget (``started`` + ``timeout``, or none) and
    clear the reason an earlier command's sweep stopped: running the command again resumes
    the study with a new budget. Returns the deadline."""
    deadline = None if timeout is None else started + timeout
    study.set_user_attr(stored.DEADLINE, deadline)
    study.set_user_attr(stored.STOPPED_BY, None)
    return deadline


def stop(study: optuna.Study, reason: str) -> None:
    """Record why the study stopped (the first worker to stop says it)."""
    study.set_user_attr(stored.STOPPED_BY, reason)


def _reached(study: optuna.Study, best: FrozenTrial, target: float) -> bool:
    if study.direction == optuna.study.StudyDirection.MINIMIZE:
        return best.value <= target
    return best.value >= target


def _finished(study: optuna.Study) -> list[FrozenTrial]:
    return [t for t in queries.counted_trials(study) if t.state in queries.FINISHED]


def _predicted_trial_s(study: optuna.Study, max_epochs: int | None) -> float | None:
    """A whole trial's seconds: the median seconds per epoch of the trials run so far times
    ``max_epochs`` (a pruned trial's few epochs measure an epoch as well as a whole one)."""
    per_epoch = [
        d / e
        for t in _finished(study)
        if queries.ran(t) and (d := queries.duration_s(t)) and (e := queries.epochs_run(t))
    ]
    if not per_epoch or not max_epochs:
        return None
    return statistics.median(per_epoch) * max_epochs
