"""The LightningModule for image classification: loss, metrics and optimizer wiring."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor, nn
from torchmetrics import MaxMetric, MeanMetric, MinMetric
from torchmetrics.classification import MulticlassAccuracy

OptimizerFactory = Callable[..., torch.optim.Optimizer]
SchedulerFactory = Callable[..., torch.optim.lr_scheduler.LRScheduler]


class Classifier(pl.LightningModule):
    """Trains any network that maps images to class logits, with cross-entropy.

    ``optimizer`` and ``scheduler`` are partially applied constructors (Hydra ``_partial_``
    configs) that receive the parameters and the optimizer. Logs per epoch: ``train/loss``,
    ``train/acc``, ``val/loss``, ``val/acc``, ``val/loss_best``, ``val/acc_best``,
    ``test/loss``, ``test/acc``.
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        num_classes: int = 10,
    ) -> None:
        super().__init__()
        # No save_hyperparameters(): the run logs the whole resolved config itself, and the
        # run directory's config rebuilds the model for evaluation.
        self.net = net
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.loss_fn = nn.CrossEntropyLoss()
        self.metrics = nn.ModuleDict(
            {
                f"{stage}_{kind}": metric
                for stage in ("train", "val", "test")
                for kind, metric in (
                    ("acc", MulticlassAccuracy(num_classes, average="micro", validate_args=False)),
                    ("loss", MeanMetric()),
                )
            }
        )
        self.val_acc_best = MaxMetric()
        self.val_loss_best = MinMetric()

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def _step(self, batch: tuple[Tensor, Tensor], stage: str) -> Tensor:
        images, labels = batch
        logits = self(images)
        loss = self.loss_fn(logits, labels)
        # Accumulate only; the epoch-level values are computed and logged once per epoch.
        self.metrics[f"{stage}_acc"].update(logits.detach(), labels)
        self.metrics[f"{stage}_loss"].update(loss.detach(), len(labels))
        return loss

    def _log_epoch(self, stage: str) -> dict[str, Tensor]:
        values = {}
        for kind in ("loss", "acc"):
            metric = self.metrics[f"{stage}_{kind}"]
            values[kind] = metric.compute()
            metric.reset()
            self.log(f"{stage}/{kind}", values[kind], prog_bar=stage != "test")
        return values

    def on_train_start(self) -> None:
        # The sanity-check validation must not count as the best epoch.
        self.val_acc_best.reset()
        self.val_loss_best.reset()

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return self._step(batch, "train")

    def on_train_epoch_end(self) -> None:
        self._log_epoch("train")

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._step(batch, "val")

    def on_validation_epoch_end(self) -> None:
        values = self._log_epoch("val")
        self.val_acc_best.update(values["acc"])
        self.val_loss_best.update(values["loss"])
        self.log("val/acc_best", self.val_acc_best.compute(), prog_bar=True)
        self.log("val/loss_best", self.val_loss_best.compute())

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._step(batch, "test")

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(params=self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer=optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler}}
