"""Seconds per training epoch: sweeplab's Lightning path against a plain PyTorch loop.

Both train the same baseline network on the same tensors, batch size and optimizer; the
Lightning side is composed from the real configs (callbacks included), the plain side is
forward, loss, backward, step. Epochs alternate between the two so that machine noise hits
both alike; the first epoch of each is a warm-up and not counted.

    python benchmarks/epoch_time.py --data-dir ../shared/fashion-mnist --epochs 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, open_dict

from sweeplab import config

ROOT = Path(__file__).resolve().parents[1]


class EpochTimer(pl.Callback):
    """Wall time of each training epoch, validation excluded."""

    def __init__(self) -> None:
        self.seconds: list[float] = []

    def on_train_epoch_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self._start = time.perf_counter()

    def on_train_batch_end(self, *args: object) -> None:
        self._end = time.perf_counter()  # the last batch's end, before validation starts

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.seconds.append(self._end - self._start)


def compose_experiment(experiment: str, data_dir: str, out: str) -> DictConfig:
    GlobalHydra.instance().clear()
    overrides = [f"experiment={experiment}", f"data.data_dir={data_dir}", "logger=csv"]
    with initialize_config_dir(str(ROOT / "configs")):
        cfg = compose("train", overrides=overrides)
    with open_dict(cfg):
        cfg.paths.output_dir = out
    return cfg


def lightning_epochs(cfg: DictConfig, epochs: int) -> list[float]:
    pl.seed_everything(0, verbose=False)
    timer = EpochTimer()
    datamodule = config.instantiate(cfg.data, "data")
    model = config.instantiate(cfg.model, "model")
    callbacks = [*config.instantiate_group(cfg.callbacks, "callbacks"), timer]
    loggers = config.instantiate_group(cfg.logger, "logger")
    trainer = config.instantiate(
        cfg.trainer, "trainer", callbacks=callbacks, logger=loggers, max_epochs=epochs
    )
    trainer.fit(model, datamodule=datamodule)
    return timer.seconds


def plain_epochs(cfg: DictConfig, epochs: int) -> list[float]:
    torch.manual_seed(0)
    datamodule = config.instantiate(cfg.data, "data")
    datamodule.setup("fit")
    net = config.instantiate(cfg.model.net, "model.net")
    optimizer = config.instantiate(cfg.model.optimizer, "model.optimizer")(net.parameters())
    loss_fn = torch.nn.CrossEntropyLoss()
    seconds = []
    for _ in range(epochs):
        net.train()
        start = time.perf_counter()
        total = torch.zeros(())
        for images, labels in datamodule.train_dataloader():
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(net(images), labels)
            loss.backward()
            optimizer.step()
            total += loss.detach()
        seconds.append(time.perf_counter() - start)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("FASHION_MNIST_DIR"), required=False)
    parser.add_argument("--epochs", type=int, default=3, help="per side; the first is warm-up")
    parser.add_argument("--experiments", nargs="+", default=["cnn_baseline", "mlp_baseline"])
    args = parser.parse_args()
    if not args.data_dir:
        sys.exit("Pass --data-dir or set FASHION_MNIST_DIR.")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch size 32")
    with tempfile.TemporaryDirectory() as out:
        for experiment in args.experiments:
            cfg = compose_experiment(experiment, args.data_dir, out)
            light, plain = [], []
            for _ in range(args.epochs):  # alternate one epoch each
                light += lightning_epochs(cfg, 1)
                plain += plain_epochs(cfg, 1)
            lm, pm = statistics.median(light[1:]), statistics.median(plain[1:])
            print(
                f"{experiment}: sweeplab {lm:.2f} s/epoch, plain PyTorch {pm:.2f} s/epoch, "
                f"ratio {lm / pm:.3f}  (epochs: sweeplab {[round(s, 2) for s in light]}, "
                f"plain {[round(s, 2) for s in plain]})",
                flush=True,
            )


if __name__ == "__main__":
    main()
