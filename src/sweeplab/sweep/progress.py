"""One console line per finished trial: state, objective, best so far, time spent and left.

Everything is read from the study, so the lines are the same whichever worker (or the process
that watches SLURM jobs) prints them, and the pace counts every worker's trials.
"""

from __future__ import annotations

import logging
import math
import time

import optuna
from optuna.trial import FrozenTrial, TrialState

from sweeplab.sweep import queries

__all__ = ["STATE_WORDS", "SweepProgress", "format_duration", "format_values"]

log = logging.getLogger(__name__)

STATE_WORDS = {
    TrialState.COMPLETE: "complete",
    TrialState.PRUNED: "pruned",
    TrialState.FAIL: "failed",
}


def format_values(values: list[float] | None) -> str:
    """``0.9123`` for one objective, ``0.9123, 5.423e+05`` for several; ``-`` for none."""
    if not values or not all(math.isfinite(v) for v in values):
        return "-"
    return ", ".join(f"{v:.4f}" if abs(v) < 1e4 else f"{v:.4g}" for v in values)


def format_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


class SweepProgress:
    """Logs progress towards ``n_trials`` finished trials; the time left extrapolates the pace
    of the trials finished (by any worker) since this process started watching."""

    def __init__(self, study: optuna.Study, n_trials: int) -> None:
        self.study = study
        self.n_trials = n_trials
        self.started = time.monotonic()
        self.finished_at_start = queries.count_finished(study)
        self.reported = {t.number for t in self._ended()}

    def trial_finished(self, number: int) -> str:
        """Log the line of trial ``number``, which has just ended."""
        self.reported.add(number)
        line = self.line(queries.trial(self.study, number))
        log.info(line)
        return line

    def poll(self) -> list[str]:
        """Log a line for every trial that ended since the last call (any worker's)."""
        new = [t.number for t in self._ended() if t.number not in self.reported]
        return [self.trial_finished(number) for number in new]

    def line(self, trial: FrozenTrial) -> str:
        # finished as of this trial's end, so lines printed late (by a watcher) still count up
        finished = queries.finished_by(self.study, trial.datetime_complete)
        elapsed = time.monotonic() - self.started
        done_here = finished - self.finished_at_start
        left = (
            f"~{format_duration(max(self.n_trials - finished, 0) * elapsed / done_here)}"
            if done_here > 0
            else "?"
        )
        value = format_values(trial.values)
        if queries.is_multi_objective(self.study):
            best_text = f"Pareto set {len(queries.pareto_trials(self.study))} trial(s)"
        elif (best := queries.best_trial(self.study)) is not None:
            best_text = f"best {best.value:.4f} (trial {best.number})"
        else:  # no complete trial yet
            best_text = "best -"
        state = STATE_WORDS.get(trial.state, trial.state.name.lower())
        return (
            f"Trial {trial.number} {state}: value {value} | {best_text} | "
            f"{finished}/{self.n_trials} finished | elapsed {format_duration(elapsed)} | "
            f"left {left}"
        )

    def _ended(self) -> list[FrozenTrial]:
        return [t for t in queries.reported_trials(self.study) if t.state.is_finished()]
