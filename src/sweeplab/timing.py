"""Seconds per epoch, recorded in every run's ``metrics.json``: what a run spends outside its
epochs (set-up, logging, checkpoints) is its overhead, and sweeps are judged by it."""

from __future__ import annotations

import time

import pytorch_lightning as pl

__all__ = ["EpochClock"]


class EpochClock(pl.Callback):
    """Wall time of each epoch, training and validation together (Lightning runs an epoch's
    validation before ``on_train_epoch_end``)."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self._start = 0.0

    def on_train_epoch_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.seconds.append(round(time.perf_counter() - self._start, 3))
