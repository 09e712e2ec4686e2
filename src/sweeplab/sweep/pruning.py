"""Reporting a trial's progress to its Optuna trial (its epochs, the model's size), and
stopping it when the pruner says so."""

from __future__ import annotations

import logging
import math

import optuna
import pytorch_lightning as pl
from optuna.trial import FrozenTrial

from sweeplab import tracking
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

    def __init__(
        self, trial: optuna.Trial, monitor: str, resumes: FrozenTrial | None = None
    ) -> None:
        self.trial = trial
        self.monitor = monitor
        self.resumes = resumes  # the failed trial whose checkpoint this one goes on from
        self._reports = len(trial.study.directions) == 1

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # the size of what the trial trains, for comparing architectures in the reports
        self.trial.set_user_attr(stored.MODEL_PARAMS, parameter_count(pl_module))
        if (run := tracking.run_id(trainer.loggers)) is not None:  # for a retry to continue it
            self.trial.set_user_attr(stored.WANDB_RUN_ID, run)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.resumes is not None:  # a checkpoint is loaded by now: current_epoch goes on
            self._carry_over(self.resumes, trainer.current_epoch, trainer.max_epochs)

    def _carry_over(self, failed: FrozenTrial, start: int, max_epochs: int | None) -> None:
        """Take over the failed trial that this one retries, from epoch ``start`` (0: no
        checkpoint, a fresh start): report its values of the epochs its checkpoint holds as
        this trial's, so that the pruner sees one continuous trial and judges each epoch once,
        and record the epochs it trained past its checkpoint (lost, trained again here)."""
        if self._reports:
            for step, value in sorted(failed.intermediate_values.items()):
                if step < start:
                    self.trial.report(value, step=step)
            lost = sum(1 for step in failed.intermediate_values if step >= start)
        else:
            lost = max(0, int(failed.user_attrs.get(stored.EPOCHS, 0)) - start)
            if start:
                self.trial.set_user_attr(stored.EPOCHS, start)
        self.trial.set_user_attr(stored.EPOCHS_LOST, lost)
        if start:
            self.trial.set_user_attr(stored.RESUMED_FROM, failed.number)
            how = f"goes on from trial {failed.number}'s checkpoint at epoch {start + 1}"
        else:
            how = f"retries trial {failed.number} from epoch 1 (no checkpoint of it)"
        log.info(
            "Trial %d %s of %s; %d epoch(s) lost with its worker",
            self.trial.number,
            how,
            max_epochs,
            lost,
        )

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
