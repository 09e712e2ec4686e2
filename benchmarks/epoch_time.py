"""Seconds per training epoch: sweeplab's default path against a plain float32 PyTorch loop.

Both train the same baseline network on the same tensors, batch size and optimizer; the
sweeplab side is composed from the real configs (callbacks included, precision=auto and
channels-last as a user gets them), the plain side is forward, loss, backward, step in float32
NCHW with the layers in the reference's conv-ReLU-pool order. Epochs alternate between the two
so that machine noise hits both alike; the first epoch of each is a warm-up and not counted.

    python benchmarks/epoch_time.py --data-dir ../shared/fashion-mnist --epochs 3
    python benchmarks/epoch_time.py --data-dir ../shared/fashion-mnist --experiments \
        cnn_baseline --batch-sizes 32 256 --overrides trainer.precision=32-true
"""

from __future__ import annotations

import argparse
import itertools
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

from sweeplab import build, process, trainers

ROOT = Path(__file__).resolve().parents[1]


class EpochTimer(pl.Callback):
    """Wall time of each training epoch, validation excluded."""

    def __init__(self) -> None:
        self.seconds: list[float] = []

    def on_train_epoch_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self._start = time.perf_counter()

    def on_train_batch_end(
        self, trainer: pl.Trainer, module: pl.LightningModule, out: object, batch: object, i: int
    ) -> None:
        if i == trainer.num_training_batches - 1 and module.device.type == "cuda":
            torch.cuda.synchronize()  # the last batch's end, not its launch
        self._end = time.perf_counter()  # the last batch's end, before validation starts

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.seconds.append(self._end - self._start)


def compose_experiment(
    experiment: str, data_dir: str, out: str, batch_size: int, extra: list[str]
) -> DictConfig:
    GlobalHydra.instance().clear()
    overrides = [
        f"experiment={experiment}",
        f"data.data_dir={data_dir}",
        f"data.batch_size={batch_size}",
        "logger=csv",
        *extra,
    ]
    with initialize_config_dir(str(ROOT / "configs")):
        cfg = compose("train", overrides=overrides)
    with open_dict(cfg):
        cfg.paths.output_dir = out
    return cfg


def lightning_epochs(cfg: DictConfig, epochs: int) -> list[float]:
    pl.seed_everything(0, verbose=False)
    timer = EpochTimer()
    datamodule = build.instantiate(cfg.data, "data")
    model = build.instantiate(cfg.model, "model")
    callbacks = [*build.instantiate_group(cfg.callbacks, "callbacks"), timer]
    loggers = build.instantiate_group(cfg.logger, "logger")
    process.apply(keep_freed_memory=cfg.trainer.get("keep_freed_memory", True))  # as a run does
    trainer = build.instantiate(
        trainers.without_process_settings(cfg.trainer),
        "trainer",
        callbacks=callbacks,
        logger=loggers,
        max_epochs=epochs,
    )
    trainer.fit(model, datamodule=datamodule)
    return timer.seconds


def relu_before_pool(net: torch.nn.Module) -> torch.nn.Module:
    """The network in the order the reference (and most PyTorch code) writes it: sweeplab's
    CNN pools before its ReLU, which gives the same outputs faster."""
    for module in net.modules():
        if isinstance(module, torch.nn.Sequential):
            for i in range(len(module) - 1):
                if isinstance(module[i], torch.nn.MaxPool2d) and isinstance(
                    module[i + 1], torch.nn.ReLU
                ):
                    module[i], module[i + 1] = module[i + 1], module[i]
    return net


def plain_epochs(cfg: DictConfig, epochs: int, device: str) -> list[float]:
    """The reference: float32, NCHW, conv-ReLU-pool, torch.optim.Adam's default (not fused)
    update."""
    torch.manual_seed(0)
    datamodule = build.instantiate(cfg.data, "data")
    datamodule.setup("fit")
    batches = datamodule.train_dataloader()
    batches.images, batches.labels = batches.images.to(device), batches.labels.to(device)
    net = relu_before_pool(build.instantiate(cfg.model.net, "model.net")).to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=cfg.model.optimizer.lr)
    loss_fn = torch.nn.CrossEntropyLoss()
    seconds = []
    for _ in range(epochs):
        net.train()
        start = time.perf_counter()
        total = torch.zeros((), device=device)
        for images, labels in batches:
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(net(images), labels)
            loss.backward()
            optimizer.step()
            total += loss.detach()
        float(total)  # waits for the device to finish the epoch
        seconds.append(time.perf_counter() - start)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("FASHION_MNIST_DIR"), required=False)
    parser.add_argument("--epochs", type=int, default=3, help="per side; the first is warm-up")
    parser.add_argument("--experiments", nargs="+", default=["cnn_baseline", "mlp_baseline"])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[32])
    parser.add_argument("--overrides", nargs="*", default=[], help="for the sweeplab side")
    parser.add_argument("--device", default="cpu", help="of the plain loop: cpu or cuda")
    args = parser.parse_args()
    if not args.data_dir:
        sys.exit("Pass --data-dir or set FASHION_MNIST_DIR.")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    with tempfile.TemporaryDirectory() as out:
        for experiment, batch_size in itertools.product(args.experiments, args.batch_sizes):
            cfg = compose_experiment(experiment, args.data_dir, out, batch_size, args.overrides)
            light, plain = [], []
            for _ in range(args.epochs):  # alternate one epoch each
                light += lightning_epochs(cfg, 1)
                plain += plain_epochs(cfg, 1, args.device)
            lm, pm = statistics.median(light[1:]), statistics.median(plain[1:])
            print(
                f"{experiment}, batch {batch_size}: sweeplab {lm:.2f} s/epoch, "
                f"plain PyTorch {pm:.2f} s/epoch, "
                f"ratio {lm / pm:.3f}  (epochs: sweeplab {[round(s, 2) for s in light]}, "
                f"plain {[round(s, 2) for s in plain]})",
                flush=True,
            )


if __name__ == "__main__":
    main()
