"""A trial's time limits, enforced inside the trial: the study's time budget
(``hydra.sweeper.timeout``), met at an epoch boundary, and the trial's own limit
(``hydra.sweeper.trial_timeout``), met wherever the trial is, since a hung data loader never
reaches a boundary.

Both live in the trial's process because that is where a parallel launcher runs it; the
worker only hands the limits over in the trial context.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

import optuna
import pytorch_lightning as pl

from sweeplab.sweep import study as stored
from sweeplab.sweep.context import TrialContext

__all__ = ["TrialLimits", "TrialTimedOut", "for_trial"]

log = logging.getLogger(__name__)


class TrialTimedOut(TimeoutError):
    """The trial ran past ``hydra.sweeper.trial_timeout``: it fails, and its worker goes on."""


class TrialLimits(pl.Callback):
    """Stop the trial before an epoch that would end past ``deadline`` (PRUNED: it ran fewer
    epochs than the others, so its value must not compete with theirs as a finished trial's,
    while the sampler still learns from its epochs), and fail it with :class:`TrialTimedOut`
    once it has trained for ``timeout_s``."""

    def __init__(
        self,
        trial: Callable[[], optuna.Trial],
        deadline: float | None = None,
        timeout_s: float | None = None,
    ) -> None:
        self.trial = trial  # called only when the trial is stopped: a reopened one costs
        self.deadline = deadline
        self.timeout_s = timeout_s
        self._created = time.time()
        self._epoch_started = 0.0
        self._armed = False
        self._previous_handler: Any = None

    # The alarm is set once training starts and cleared when it ends, inside Lightning's own
    # signal handling: Lightning saves every handler before training and puts them back after,
    # so an alarm handler set earlier would come back, and one cleared later would be missed.
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.timeout_s is not None:  # counted from the trial's start, its set-up included
            self._start_alarm(max(self.timeout_s - (time.time() - self._created), 0.001))

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._stop_alarm()

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        self._stop_alarm()

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._epoch_started = time.time()

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or self.deadline is None or not self._epoch_started:
            return
        done = trainer.current_epoch + 1
        if trainer.max_epochs is not None and done >= trainer.max_epochs:
            return  # its last epoch: it finishes as any trial does
        # The next epoch would take about as long as this one: stop now rather than past it.
        if time.time() + (time.time() - self._epoch_started) > self.deadline:
            reason = (
                f"stopped after {done} of {trainer.max_epochs} epochs: the next would end "
                "past the study's time budget (hydra.sweeper.timeout)"
            )
            self.trial().set_user_attr(stored.ENDED_BY, reason)
            raise optuna.TrialPruned(reason)

    def _start_alarm(self, seconds: float) -> None:
        if threading.current_thread() is not threading.main_thread():
            log.warning(
                "hydra.sweeper.trial_timeout is not applied: the trial runs outside its "
                "process's main thread (a thread-based launcher), where no alarm can stop it."
            )
            return

        def timed_out(signum: int, frame: FrameType | None) -> None:
            raise TrialTimedOut(
                f"the trial ran past hydra.sweeper.trial_timeout={self.timeout_s:g} s and was "
                "stopped (a hang, or a configuration slower than the limit allows)"
            )

        self._previous_handler = signal.signal(signal.SIGALRM, timed_out)
        self._armed = True
        signal.setitimer(signal.ITIMER_REAL, seconds)

    def _stop_alarm(self) -> None:
        if not self._armed:
            return
        signal.setitimer(signal.ITIMER_REAL, 0)
        previous = self._previous_handler
        signal.signal(signal.SIGALRM, signal.SIG_DFL if previous is None else previous)
        self._armed = False


def for_trial(context: TrialContext) -> list[pl.Callback]:
    """The callback that enforces the trial's limits, if its context gives any."""
    if context.deadline is None and context.timeout_s is None:
        return []
    return [TrialLimits(context.trial, context.deadline, context.timeout_s)]
