"""The throttled progress bar: updated every ``refresh_rate`` batches and on the last one, so
it ends each epoch showing every batch done."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import RichProgressBar
from torch.utils.data import DataLoader, TensorDataset

from sweeplab.progress_bar import ThrottledRichProgressBar


class TinyModule(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(4, 2)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        images, labels = batch
        loss = torch.nn.functional.cross_entropy(self.layer(images), labels)
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


class ShownAtEpochEnd(pl.Callback):
    """What the bar's training task shows once the last batch is done (runs after the bar)."""

    def __init__(self, bar: RichProgressBar) -> None:
        self.bar = bar
        self.completed: list[float] = []

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        task = self.bar.progress.tasks[self.bar.train_progress_bar_id]  # type: ignore[union-attr]
        self.completed.append(task.completed)


def test_the_bar_updates_every_refresh_rate_batches_and_ends_complete(monkeypatch: Any) -> None:
    updated_at: list[int] = []
    stock_update = RichProgressBar.on_train_batch_end

    def spy(self: RichProgressBar, *args: Any) -> None:
        updated_at.append(args[-1])
        stock_update(self, *args)

    monkeypatch.setattr(RichProgressBar, "on_train_batch_end", spy)
    bar = ThrottledRichProgressBar(refresh_rate=20)
    shown = ShownAtEpochEnd(bar)
    data = TensorDataset(torch.randn(45, 4), torch.randint(0, 2, (45,)))
    trainer = pl.Trainer(
        max_epochs=2, callbacks=[bar, shown], logger=False, enable_checkpointing=False
    )
    trainer.fit(TinyModule(), DataLoader(data, batch_size=1))
    assert updated_at == [19, 39, 44] * 2
    assert shown.completed == [45, 45]
