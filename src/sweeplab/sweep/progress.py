"""One console line per finished trial: state, objective, best so far, time spent and left."""

from __future__ import annotations

import logging
import math
import time

import optuna
from optuna.trial import TrialState

log = logging.getLogger(__name__)

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)  # what counts towards n_trials


def count_finished(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED))


STATE_WORDS = {
    TrialState.COMPLETE: "complete",
    TrialState.PRUNED: "pruned",
    TrialState.FAIL: "failed",
}


def format_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


class SweepProgress:
    """Logs progress towards ``n_trials`` finished trials; the estimate of the time left
    extrapolates the pace of the trials finished since this sweep process started."""

    def __init__(self, study: optuna.Study, n_trials: int) -> None:
        self.study = study
        self.n_trials = n_trials
        self.started = time.monotonic()
        self.attempts = 0

    def trial_finished(self, number: int) -> str:
        self.attempts += 1
        trial = self.study.get_trials(deepcopy=False)[number]
        finished = count_finished(self.study)
        elapsed = time.monotonic() - self.started
        per_trial = elapsed / self.attempts
        left = max(self.n_trials - finished, 0) * per_trial
        value = (
            "-" if trial.value is None or not math.isfinite(trial.value) else f"{trial.value:.4f}"
        )
        try:
            best = self.study.best_trial
            best_text = f"best {best.value:.4f} (trial {best.number})"
        except (ValueError, RuntimeError):  # no complete trial yet, or several objectives
            best_text = "best -"
        state = STATE_WORDS.get(trial.state, trial.state.name.lower())
        line = (
            f"Trial {number} {state}: value {value} | {best_text} | "
            f"{finished}/{self.n_trials} finished | elapsed {format_duration(elapsed)} | "
            f"left ~{format_duration(left)}"
        )
        log.info(line)
        return line
