"""Reporting a trial's progress to its Optuna study, and stopping it when the pruner says so.

The callback talks to the study through its storage, so it works whether the trial runs in
the sweeper's process or in another one started by a launcher.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import optuna
import pytorch_lightning as pl

from sweeplab.sweep import study as stored
from sweeplab.sweep.compat import trial_by_number
from sweeplab.sweep.storage import open_storage

log = logging.getLogger(__name__)


class TrialPruned(optuna.TrialPruned):
    """Raised inside a trial that the pruner stopped; the run records itself as pruned."""

    run_state = "pruned"


class OptunaPruning(pl.Callback):
    """After every validation epoch, report ``monitor`` to trial ``trial_number`` of the study
    and raise :class:`TrialPruned` when the study's pruner stops the trial.

    ``trial_number=None`` (a run outside a sweep) makes the callback do nothing.
    """

    def __init__(
        self,
        study_name: str,
        storage: str,
        monitor: str,
        trial_number: int | None = None,
        pruner: optuna.pruners.BasePruner | None = None,
    ) -> None:
        self.study_name = study_name
        self.storage = storage
        self.monitor = monitor
        self.trial_number = trial_number
        self.pruner = pruner or optuna.pruners.NopPruner()
        self._trial: optuna.Trial | None = None
        self._reports = True

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self.trial_number is None or stage != "fit":
            return
        study = optuna.load_study(
            study_name=self.study_name, storage=open_storage(self.storage), pruner=self.pruner
        )
        self._trial = trial_by_number(study, self.trial_number)
        # Optuna takes no per-epoch values from a multi-objective trial: count epochs instead.
        self._reports = len(study.directions) == 1

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._trial is None or trainer.sanity_checking:
            return
        value = trainer.callback_metrics.get(self.monitor)
        if value is None or not math.isfinite(float(value)):
            return  # divergence is the training's own error, not a pruning decision
        epoch = trainer.current_epoch
        if not self._reports:
            self._trial.set_user_attr(stored.EPOCHS, epoch + 1)
            return
        self._trial.report(float(value), step=epoch)
        last_epoch = trainer.max_epochs is not None and epoch + 1 >= trainer.max_epochs
        # A trial that has run all its epochs is complete: pruning it then saves nothing and
        # would hide its result from the sampler.
        if not last_epoch and self._trial.should_prune():
            message = (
                f"Trial {self.trial_number} pruned after epoch {epoch + 1}: "
                f"{self.monitor}={float(value):.4f}"
            )
            log.info(message)
            raise TrialPruned(message)

    def state_dict(self) -> dict[str, Any]:
        return {}
