"""Seconds per training epoch: sweeplab, Lightning's own floor, and a plain PyTorch loop.

"sweeplab, stock hooks" is sweeplab's run with Lightning's own ``RichProgressBar`` and
``PassThroughProfiler`` in place of sweeplab's (which skip their per-batch work). The floor is
``pl.Trainer(barebones=True)`` (no callbacks, logging or progress bar) on a LightningModule
whose training step is the loss alone, in the precision and memory layout of sweeplab's run:
what any Lightning training loop costs (timed around ``fit``, so it includes the Trainer's
start: an upper bound). The sides alternate epoch by epoch; medians of the epochs after the
first (a warm-up).

    python benchmarks/lightning_floor.py --data-dir ../shared/fashion-mnist
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import pytorch_lightning as pl
import torch
from epoch_time import compose_experiment, lightning_epochs, plain_epochs
from omegaconf import DictConfig
from torch import Tensor, nn

from sweeplab import build
from sweeplab.models.layout import AUTO, to_channels_last
from sweeplab.trainers import auto_precision

STOCK_HOOKS = [
    "callbacks.rich_progress_bar._target_=pytorch_lightning.callbacks.RichProgressBar",
    "+trainer.profiler._target_=pytorch_lightning.profilers.PassThroughProfiler",
]


class LossOnly(pl.LightningModule):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = to_channels_last(net, AUTO)  # as sweeplab's Classifier does
        self.loss_fn = nn.CrossEntropyLoss()

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        images, labels = batch
        return self.loss_fn(self.net(images), labels)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=1e-3, fused=True)


def barebones_epoch(cfg: DictConfig) -> float:
    torch.manual_seed(0)
    datamodule = build.instantiate(cfg.data, "data")
    module = LossOnly(build.instantiate(cfg.model.net, "model.net"))
    trainer = pl.Trainer(
        barebones=True,
        max_epochs=1,
        precision=auto_precision("cpu"),
        accelerator="cpu",
        limit_val_batches=0,
        logger=False,
    )
    start = time.perf_counter()
    trainer.fit(module, datamodule=datamodule)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--experiment", default="mlp_baseline")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=5, help="per side; the first is warm-up")
    parser.add_argument("--overrides", nargs="*", default=[])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as out:
        cfg, stock_cfg = (
            compose_experiment(args.experiment, args.data_dir, out, args.batch_size, overrides)
            for overrides in (args.overrides, [*args.overrides, *STOCK_HOOKS])
        )
        sides = {
            "sweeplab": lambda: lightning_epochs(cfg, 1)[0],
            "sweeplab, stock hooks": lambda: lightning_epochs(stock_cfg, 1)[0],
            "Lightning barebones": lambda: barebones_epoch(cfg),
            "plain PyTorch": lambda: plain_epochs(cfg, 1, "cpu")[0],
        }
        seconds: dict[str, list[float]] = {side: [] for side in sides}
        for _ in range(args.epochs):
            for side, epoch in sides.items():
                seconds[side].append(epoch())
    plain = statistics.median(seconds["plain PyTorch"][1:])
    for side, values in seconds.items():
        median = statistics.median(values[1:])
        print(
            f"{args.experiment}, batch {args.batch_size}, {side}: {median:.2f} s/epoch, "
            f"{median / plain:.3f} of the plain loop  (epochs: {[round(s, 2) for s in values]})"
        )


if __name__ == "__main__":
    main()
