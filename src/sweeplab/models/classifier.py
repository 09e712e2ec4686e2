"""The LightningModule for image classification: loss, metrics and optimizer wiring."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor, nn
from torchmetrics import MaxMetric, MeanMetric, MinMetric
from torchmetrics.classification import MulticlassAccuracy

from sweeplab.errors import TrainingDiverged
from sweeplab.models.layout import to_channels_last

__all__ = ["STAGES", "Classifier", "OptimizerFactory", "SchedulerFactory"]

OptimizerFactory = Callable[..., torch.optim.Optimizer]
SchedulerFactory = Callable[..., torch.optim.lr_scheduler.LRScheduler]


STAGES = ("train", "val", "test")


class Classifier(pl.LightningModule):
    """Trains any network that maps images to class logits, with cross-entropy.

    ``optimizer`` and ``scheduler`` are partially applied constructors (Hydra ``_partial_``
    configs) that receive the parameters and the optimizer. ``label_smoothing`` mixes the
    one-hot targets with the uniform distribution (0: plain cross-entropy). ``channels_last``
    (``auto``: for nets with convolutions) stores the net's weights channels-last, the fast
    layout on CPU (oneDNN) and GPU (cuDNN). Logs per epoch: ``train/loss``, ``train/acc``,
    ``val/loss``, ``val/acc``, ``val/loss_best``, ``val/acc_best``, ``test/loss``,
    ``test/acc``.
    """

    LOGGED_METRICS = (
        *(f"{stage}/{kind}" for stage in STAGES for kind in ("loss", "acc")),
        "val/loss_best",
        "val/acc_best",
    )

    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        num_classes: int = 10,
        channels_last: bool | str = "auto",
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__()
        if not isinstance(net, nn.Module):
            raise ValueError(
                f"net={type(net).__name__} is not a torch.nn.Module: model.net._target_ must "
                "build a network that maps images to class logits."
            )
        if not (isinstance(channels_last, bool) or channels_last == "auto"):
            raise ValueError(f"channels_last={channels_last!r} is invalid: use auto, true, false.")
        if isinstance(label_smoothing, bool) or not (
            isinstance(label_smoothing, int | float) and 0.0 <= label_smoothing < 1.0
        ):
            raise ValueError(
                f"label_smoothing={label_smoothing!r} is invalid: use a number in [0, 1)."
            )
        # No save_hyperparameters(): the run logs the whole resolved config itself, and the
        # run directory's config rebuilds the model for evaluation.
        self.net = to_channels_last(net, channels_last)
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        # Smoothing changes the training target; the logged losses use it too.
        self.loss_fn = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
        self.metrics = nn.ModuleDict(
            {
                f"{stage}_{kind}": metric
                for stage in STAGES
                for kind, metric in (
                    ("acc", MulticlassAccuracy(num_classes, average="micro", validate_args=False)),
                    # "disable": a diverged (NaN) loss must show, not be dropped from the mean.
                    ("loss", MeanMetric(nan_strategy="disable")),
                )
            }
        )
        self._epoch_outputs: dict[str, list[tuple[Tensor, Tensor, Tensor]]] = {
            stage: [] for stage in STAGES
        }
        self.val_acc_best = MaxMetric()
        self.val_loss_best = MinMetric()

    def __setattr__(self, name: str, value: Any) -> None:
        # Lightning sets bookkeeping attributes (such as _current_fx_name) around every hook,
        # dozens of times per step; nn.Module's checks against parameters, buffers and
        # submodules cost more than a small network's step. A plain attribute that already
        # exists can skip them: parameters, buffers and submodules never live in __dict__.
        if name in self.__dict__ and not isinstance(value, Tensor | nn.Module):
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def _step(self, batch: tuple[Tensor, Tensor], stage: str) -> Tensor:
        images, labels = batch
        logits = self(images)
        loss = self.loss_fn(logits, labels)
        # Keep predictions and losses; the metrics see them once per epoch, because a metric
        # update per step costs more than a small network's whole training step.
        self._epoch_outputs[stage].append((logits.detach().argmax(dim=1), labels, loss.detach()))
        return loss

    def _log_epoch(self, stage: str) -> dict[str, Tensor]:
        preds, labels, losses = zip(*self._epoch_outputs[stage], strict=True)
        self._epoch_outputs[stage].clear()
        batch_sizes = torch.tensor([len(batch) for batch in labels], device=self.device)
        self.metrics[f"{stage}_acc"].update(torch.cat(preds), torch.cat(labels))
        self.metrics[f"{stage}_loss"].update(torch.stack(losses), batch_sizes)
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
        loss = self._log_epoch("train")["loss"]
        if not torch.isfinite(loss):
            raise TrainingDiverged(
                f"The training loss became {float(loss)} in epoch {self.current_epoch}: the run "
                "diverged. Lower model.optimizer.lr, or check the data and the network."
            )

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
