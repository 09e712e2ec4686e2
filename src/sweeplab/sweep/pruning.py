"""Reporting a trial's progress to its Optuna trial (its epochs, the model's size), and
stopping it when the pruner says so."""

from __future__ import annotations

import logging
import math

import optuna
import pytorch_lightning as pl

from sweeplab.costs import parameter_count
from sweeplab.sweep import study as stored

__all__ = ["OptunaPruning"]

log = logging.getLogger(__name__)


class OptunaPruning(pl.Callback):
    """After every validation epoch, report ``monitor`` to ``trial`` and raise
    ``optuna.TrialPruned`` when the study's pruner stops it.

    A multi-objective trial takes no per-epoch values in Optuna, so for it the callback only
    counts the epochs run.
    """

    def __init__(self, trial: optuna.Trial, monitor: str) -> None:
        self.trial = trial
        self.monitor = monitor
        self._reports = len(trial.study.directions) == 1

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # the size of what the trial trains, for comparing architectures in the reports
        self.trial.set_user_attr(stored.MODEL_PARAMS, parameter_count(pl_module))

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        value = trainer.callback_metrics.get(self.monitor)
        if value is None or not math.isfinite(float(value)):
            return  # divergence is the training's own error, not a pruning decision
        epoch = trainer.current_epoch
        if not self._reports:
            self.trial.set_user_attr(stored.EPOCHS, epoch + 1)
            return
        self.trial.report(float(value), step=epoch)
        last_epoch = trainer.max_epochs is not None and epoch + 1 >= trainer.max_epochs
        # A trial that has run all its epochs is complete: pruning it then saves nothing and
        # would hide its result from the sampler.
        if not last_epoch and self.trial.should_prune():
            message = (
                f"Trial {self.trial.number} pruned after epoch {epoch + 1}: "
                f"{self.monitor}={float(value):.4f}"
            )
            log.info(message)
            raise optuna.TrialPruned(message)
