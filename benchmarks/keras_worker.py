"""The reference study's stack for benchmarks/keras_epoch.py: a baseline trained by Keras on
TensorFlow, one epoch each time the parent asks.

Runs in its own environment (TensorFlow needs NumPy 2, which sweeplab's dev tools do not take),
so it imports nothing from sweeplab: it reads the training arrays the parent wrote, builds the
baseline as the reference writes it, and trains with ``model.fit`` as a Keras user does. The
parent writes a line to ask for an epoch; the worker answers ``@@ <seconds>`` at its end.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


def baseline(name: str) -> keras.Sequential:
    """The reference baselines, with logits out (the loss applies the softmax)."""
    if name == "mlp_baseline":
        body = [keras.layers.Flatten(), keras.layers.Dense(350, activation="relu")]
    elif name == "cnn_baseline":
        body = [
            keras.layers.Conv2D(32, 3, activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Flatten(),
            keras.layers.Dense(100, activation="relu"),
        ]
    else:
        sys.exit(f"keras_worker.py knows mlp_baseline and cnn_baseline, not {name!r}.")
    return keras.Sequential([keras.Input((28, 28, 1)), *body, keras.layers.Dense(10)])


class EpochOnRequest(keras.callbacks.Callback):
    """Waits for the parent's line before each epoch and answers with the epoch's seconds."""

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        sys.stdin.readline()
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        print(f"@@ {time.perf_counter() - self.start}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arrays", required=True, help=".npz: train_images (N,28,28,1), ...")
    parser.add_argument("--experiment", required=True)
    parser.add_argument("--batch-size", type=int, required=True)
    parser.add_argument("--lr", type=float, required=True)
    parser.add_argument("--epochs", type=int, required=True)
    args = parser.parse_args()
    arrays = np.load(args.arrays)
    model = baseline(args.experiment)
    model.compile(
        optimizer=keras.optimizers.Adam(args.lr),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    print(f"@@ ready: TensorFlow {tf.__version__}, Keras {keras.__version__}", flush=True)
    model.fit(
        arrays["train_images"],
        arrays["train_labels"],
        batch_size=args.batch_size,
        epochs=args.epochs,
        shuffle=True,
        verbose=0,
        callbacks=[EpochOnRequest()],
    )


if __name__ == "__main__":
    main()
