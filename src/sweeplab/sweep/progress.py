"""One console line per finished trial: state, objective, best so far, time spent and left.

Everything is read from the study, so the lines are the same whichever worker (or the process
that watches SLURM jobs) prints them, and the pace counts every worker's trials.
"""

from __future__ import annotations

import logging
import math
import time
from datetime import datetime

import optuna
from optuna.trial import FrozenTrial, TrialState

from sweeplab.sweep import queries
from sweeplab.sweep import study as stored

__all__ = [
    "STATE_WORDS",
    "SweepProgress",
    "format_duration",
    "format_number",
    "format_values",
    "time_left",
]

log = logging.getLogger(__name__)

STATE_WORDS = {
    TrialState.COMPLETE: "complete",
    TrialState.PRUNED: "pruned",
    TrialState.FAIL: "failed",
}


def format_number(value: float, digits: str = ".4f") -> str:
    """A whole number from 1,000 up (a parameter count) as an integer with thousands
    separators, ``278,260``; any other number with ``digits``."""
    if math.isfinite(value) and float(value).is_integer() and abs(value) >= 1000:
        return f"{int(value):,}"
    return f"{value:{digits}}"


def format_values(values: list[float] | None) -> str:
    """``0.9123`` for one objective, ``0.9123, 542,300`` for several; ``-`` for none."""
    if not values or not all(math.isfinite(v) for v in values):
        return "-"
    return ", ".join(format_number(v, ".4f" if abs(v) < 1e4 else ".4g") for v in values)


def format_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


class SweepProgress:
    """Logs progress towards ``n_trials`` finished trials, in the order they finished.

    The time left is read from the storage: the mean duration of the finished trials that
    trained (not reused repeats), the part of it the running trials have still to go, and as
    many trials at once as ran at once so far."""

    def __init__(self, study: optuna.Study, n_trials: int) -> None:
        self.study = study
        self.n_trials = n_trials
        self.started = time.monotonic()
        self.reported = {t.number for t in self._ended()}

    def trial_finished(self, number: int) -> str:
        """Log the line of trial ``number``, which has just ended."""
        self.reported.add(number)
        line = self.line(queries.trial(self.study, number))
        log.info(line)
        return line

    def poll(self) -> list[str]:
        """Log a line for every trial that ended since the last call (any worker's), in the
        order they ended, so that the counts go up."""
        new = [t for t in self._ended() if t.number not in self.reported]
        new.sort(key=lambda t: (t.datetime_complete or datetime.max, t.number))
        return [self.trial_finished(t.number) for t in new]

    def line(self, trial: FrozenTrial) -> str:
        # finished as of this trial's end, so lines printed late (by a watcher) still count up
        finished = queries.finished_by(self.study, trial.datetime_complete)
        left = time_left(self.study.get_trials(deepcopy=False), self.n_trials)
        if left is not None and (deadline := queries.deadline(self.study)) is not None:
            left = min(left, max(deadline - time.time(), 0.0))  # hydra.sweeper.timeout ends it
        value = format_values(trial.values)
        if queries.is_multi_objective(self.study):
            best_text = f"Pareto set {len(queries.pareto_trials(self.study))} trial(s)"
        elif (best := queries.best_trial(self.study)) is not None:
            best_text = f"best {best.value:.4f} (trial {best.number})"
        else:  # no complete trial yet
            best_text = "best -"
        if (twin := trial.user_attrs.get(stored.DUPLICATE_OF)) is not None:
            outcome = f"repeats trial {twin}: value {value} reused"
        else:
            outcome = f"{STATE_WORDS.get(trial.state, trial.state.name.lower())}: value {value}"
        return (
            f"Trial {trial.number} {outcome} | {best_text} | "
            f"{finished}/{self.n_trials} finished | "
            f"elapsed {format_duration(time.monotonic() - self.started)} | "
            f"left {'?' if left is None else '~' + format_duration(left)}"
        )

    def _ended(self) -> list[FrozenTrial]:
        return [t for t in queries.reported_trials(self.study) if t.state.is_finished()]


def time_left(
    trials: list[FrozenTrial], n_trials: int, now: datetime | None = None
) -> float | None:
    """Seconds until ``n_trials`` trials are finished, or ``None`` before one has trained.

    Each trial still to run takes the mean duration of the finished ones; a running trial
    the rest of that mean. They run as many at a time as ran on average since the first
    trial started (the trial-seconds spent over the wall-clock time)."""
    now = now or datetime.now()
    trials = [t for t in trials if not queries.warm_started(t)]  # copies: not run here
    trained = [
        t
        for t in trials
        if t.state in queries.FINISHED
        and queries.ran(t)
        and t.datetime_start is not None
        and t.datetime_complete is not None
    ]
    finished = sum(1 for t in trials if t.state in queries.FINISHED)
    if not trained:
        return None if finished < n_trials else 0.0
    spans = [(t.datetime_complete - t.datetime_start).total_seconds() for t in trained]
    mean = sum(spans) / len(spans)
    running = [
        (now - t.datetime_start).total_seconds()
        for t in trials
        if t.state == TrialState.RUNNING and t.datetime_start is not None
    ]
    to_start = max(n_trials - finished - len(running), 0)
    work = to_start * mean + sum(max(mean - elapsed, 0.0) for elapsed in running)
    first = min(t.datetime_start for t in trained)
    wall = (now - first).total_seconds()
    at_once = max((sum(spans) + sum(running)) / wall, 1.0) if wall > 0 else 1.0
    return work / at_once
