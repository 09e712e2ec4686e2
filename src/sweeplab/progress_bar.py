"""The training progress bar, drawn without a per-batch cost."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import RichProgressBar

__all__ = ["ThrottledRichProgressBar"]


class ThrottledRichProgressBar(RichProgressBar):
    """Lightning's ``RichProgressBar``, updated only on the batches it redraws.

    The stock bar redraws every ``refresh_rate`` batches but still moves its counter and
    collects the logged metrics after every training batch, which costs a few percent of a
    small network's epoch. This one does that work every ``refresh_rate`` batches and on an
    epoch's last batch, so what is shown is the same.
    """

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        done = batch_idx + 1
        if self.is_enabled and (
            done % self.refresh_rate == 0 or done == trainer.num_training_batches
        ):
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
