"""Seconds per training epoch: sweeplab's default path against Keras on TensorFlow, the stack
of the Keras Tuner study that sweeplab reproduces.

Both sides train the same baseline on the same training images (sweeplab's split and
normalisation), with the same batch size and Adam learning rate. Keras runs in its own process
and environment (benchmarks/keras_worker.py), sweeplab in this one; epochs alternate between
the two so that machine noise hits both alike, and the first epoch of each is a warm-up (Keras
traces its graph, sweeplab warms up its kernels). TensorFlow needs NumPy 2, so it gets its own
virtual environment:

    python -m venv ~/.venvs/keras && ~/.venvs/keras/bin/pip install tensorflow-cpu==2.21.0
    python benchmarks/keras_epoch.py --data-dir ../shared/fashion-mnist \
        --keras-python ~/.venvs/keras/bin/python --batch-sizes 32 256
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from epoch_time import compose_experiment, lightning_epochs
from omegaconf import DictConfig

from sweeplab import build

WORKER = Path(__file__).with_name("keras_worker.py")


def check_keras_arguments(args: argparse.Namespace) -> None:
    """Exit with a sentence unless the data and a runnable Keras interpreter are given."""
    if not args.data_dir or not args.keras_python:
        sys.exit("Pass --data-dir and --keras-python (see this script's docstring).")
    if shutil.which(args.keras_python) is None:
        sys.exit(
            f"--keras-python {args.keras_python} is not a Python interpreter that can run: "
            "make the Keras environment as this script's docstring shows and pass its "
            "bin/python."
        )


def write_keras_arrays(cfg: DictConfig, path: Path) -> None:
    """The training and validation images as Keras takes them (NHWC): the same values,
    split and normalisation that sweeplab trains on."""
    datamodule = build.instantiate(cfg.data, "data")
    datamodule.setup("fit")
    arrays = {}
    for split in ("train", "val"):
        batches = getattr(datamodule, f"{split}_dataloader")()
        arrays[f"{split}_images"] = batches.images.cpu().numpy().transpose(0, 2, 3, 1)
        arrays[f"{split}_labels"] = batches.labels.cpu().numpy()
    np.savez(path, **arrays)


class KerasWorker:
    """A Keras training run in another process, advanced one epoch per call."""

    def __init__(self, python: str, arrays: Path, cfg: DictConfig, epochs: int) -> None:
        command = [python, str(WORKER), "--arrays", str(arrays), "--epochs", str(epochs)]
        command += ["--experiment", cfg.name, "--batch-size", str(cfg.data.batch_size)]
        command += ["--lr", str(cfg.model.optimizer.lr)]
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        print(self._answer(), flush=True)

    def _answer(self) -> str:
        for line in self.process.stdout:  # type: ignore[union-attr]
            if line.startswith("@@ "):
                return line[3:].strip()
        sys.exit(f"The Keras worker stopped (exit code {self.process.wait()}); see its errors.")

    def epoch(self) -> float:
        self.process.stdin.write("\n")  # type: ignore[union-attr]
        self.process.stdin.flush()  # type: ignore[union-attr]
        return float(self._answer())

    def close(self) -> None:
        self.process.stdin.close()  # type: ignore[union-attr]
        self.process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("FASHION_MNIST_DIR"))
    parser.add_argument(
        "--keras-python",
        default=os.environ.get("KERAS_PYTHON"),
        help="a Python with tensorflow installed (or set KERAS_PYTHON)",
    )
    parser.add_argument("--epochs", type=int, default=4, help="per side; the first is warm-up")
    parser.add_argument("--experiments", nargs="+", default=["cnn_baseline", "mlp_baseline"])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[32])
    parser.add_argument("--overrides", nargs="*", default=[], help="for both sides' data")
    args = parser.parse_args()
    check_keras_arguments(args)
    with tempfile.TemporaryDirectory() as out:
        for experiment, batch_size in itertools.product(args.experiments, args.batch_sizes):
            cfg = compose_experiment(experiment, args.data_dir, out, batch_size, args.overrides)
            arrays = Path(out) / f"{experiment}.npz"
            if not arrays.exists():  # the images do not change with the batch size
                write_keras_arrays(cfg, arrays)
            keras = KerasWorker(args.keras_python, arrays, cfg, args.epochs)
            ours, theirs = [], []
            for _ in range(args.epochs):  # alternate one epoch each
                ours += lightning_epochs(cfg, 1)
                theirs.append(keras.epoch())
            keras.close()
            om, tm = statistics.median(ours[1:]), statistics.median(theirs[1:])
            print(
                f"{experiment}, batch {batch_size}: sweeplab {om:.2f} s/epoch, "
                f"Keras/TensorFlow {tm:.2f} s/epoch, ratio {om / tm:.3f}  (epochs: sweeplab "
                f"{[round(s, 2) for s in ours]}, Keras {[round(s, 2) for s in theirs]})",
                flush=True,
            )


if __name__ == "__main__":
    main()
