"""The reference study's own search for benchmarks/sweep_vs_keras_tuner.py: Keras Tuner's
Bayesian optimisation over the reference CNN space (the parent times the whole command).

Runs in the Keras environment (``tensorflow-cpu``, ``keras-tuner[bayesian]`` and
``tensorboard``, which Keras Tuner imports for every trial) and
imports nothing from sweeplab. The space mirrors configs/hparams_search/cnn_optuna.yaml: 1-2
blocks of Conv 3x3 (32 or 64 filters, valid or same padding) -> MaxPool 2 -> Dropout (0, 0.1,
0.2), a dense layer of 25-150 units, Adam or SGD at 0.01 or 0.001. Prints ``@@ <json>``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import keras_tuner  # noqa: E402
import numpy as np  # noqa: E402


def build(hp: keras_tuner.HyperParameters) -> keras.Sequential:
    model = keras.Sequential([keras.Input((28, 28, 1))])
    for i in range(hp.Int("num_blocks", 1, 2)):
        padding = hp.Choice(f"padding_{i}", ["valid", "same"])
        filters = hp.Choice(f"filters_{i}", [32, 64])
        model.add(keras.layers.Conv2D(filters, 3, padding=padding, activation="relu"))
        model.add(keras.layers.MaxPooling2D(2))
        model.add(keras.layers.Dropout(hp.Choice(f"dropout_{i}", [0.0, 0.1, 0.2])))
    model.add(keras.layers.Flatten())
    model.add(keras.layers.Dense(hp.Int("units", 25, 150, step=25), activation="relu"))
    model.add(keras.layers.Dense(10))
    optimizer = {"class_name": hp.Choice("optimizer", ["adam", "sgd"])}
    optimizer["config"] = {"learning_rate": hp.Choice("lr", [0.01, 0.001])}
    model.compile(
        optimizer=keras.optimizers.get(optimizer),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arrays", required=True, help=".npz: train and val images, labels")
    parser.add_argument("--trials", type=int, required=True)
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--batch-size", type=int, required=True)
    args = parser.parse_args()
    arrays = np.load(args.arrays)
    with tempfile.TemporaryDirectory() as directory:
        tuner = keras_tuner.BayesianOptimization(
            build,
            objective="val_accuracy",
            max_trials=args.trials,
            seed=0,
            directory=directory,
            project_name="cnn",
        )
        tuner.search(
            arrays["train_images"],
            arrays["train_labels"],
            validation_data=(arrays["val_images"], arrays["val_labels"]),
            epochs=args.epochs,
            batch_size=args.batch_size,
            verbose=0,
        )
        best = tuner.oracle.get_best_trials(1)[0].score
        trials = len(tuner.oracle.trials)
    if best is None:
        sys.exit("No Keras Tuner trial finished: see the errors above.")
    print("@@ " + json.dumps({"trials": trials, "best_val_acc": best}), flush=True)


if __name__ == "__main__":
    main()
