"""A whole sweep against the reference study's own tuner: wall time and best validation
accuracy of sweeplab's sweep and of Keras Tuner's Bayesian optimisation over the reference
CNN space, the same number of trials, epochs per trial and batch size (256).

Both see the same 57,000 training and 3,000 validation images (sweeplab's split); sweeplab
runs as a user runs it (`train.py -m hparams_search=cnn_optuna`, W&B offline), Keras Tuner in
its own environment (benchmarks/keras_tuner_search.py). Each side's wall time is its whole
command, process start and imports included, as a user waits for it. The two alternate,
round by round.

    python -m venv ~/.venvs/keras
    ~/.venvs/keras/bin/pip install tensorflow-cpu==2.21.0 'keras-tuner[bayesian]==1.4.8' tensorboard
    python benchmarks/sweep_vs_keras_tuner.py --data-dir ../shared/fashion-mnist \
        --keras-python ~/.venvs/keras/bin/python --trials 8 --rounds 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from epoch_time import compose_experiment
from keras_epoch import check_keras_arguments, write_keras_arrays
from trial_overhead import run_cnn_sweep

SEARCH = Path(__file__).with_name("keras_tuner_search.py")


def keras_tuner_search(python: str, arrays: Path, trials: int, epochs: int) -> dict:
    command = [python, str(SEARCH), "--arrays", str(arrays), "--trials", str(trials)]
    command += ["--epochs", str(epochs), "--batch-size", "256"]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - started
    answers = [line[3:] for line in done.stdout.splitlines() if line.startswith("@@ ")]
    if done.returncode or not answers:
        sys.exit(f"Keras Tuner's search failed:\n{done.stderr[-3000:]}")
    return {"wall": wall, **json.loads(answers[-1])}


def sweeplab_sweep(data_dir: str, trials: int, epochs: int, overrides: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as logs:
        extra = [f"trainer.max_epochs={epochs}", "hydra.sweeper.sampler.seed=0", *overrides]
        wall, study = run_cnn_sweep(logs, data_dir, trials, extra)
        return {"wall": wall, "trials": len(study.trials), "best_val_acc": study.best_value}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("FASHION_MNIST_DIR"))
    parser.add_argument("--keras-python", default=os.environ.get("KERAS_PYTHON"))
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=2, help="per trial")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--overrides", nargs="*", default=[], help="for both sides' data")
    args = parser.parse_args()
    check_keras_arguments(args)
    walls: dict[str, list[float]] = {"Keras Tuner": [], "sweeplab": []}
    with tempfile.TemporaryDirectory() as out:
        cfg = compose_experiment("cnn_baseline", args.data_dir, out, 256, args.overrides)
        arrays = Path(out) / "arrays.npz"
        write_keras_arrays(cfg, arrays)
        for round_ in range(1, args.rounds + 1):
            results = {
                "Keras Tuner": keras_tuner_search(
                    args.keras_python, arrays, args.trials, args.epochs
                ),
                "sweeplab": sweeplab_sweep(args.data_dir, args.trials, args.epochs, args.overrides),
            }
            for side, result in results.items():
                walls[side].append(result["wall"])
                print(
                    f"round {round_}, {side}: {result['trials']} trials in "
                    f"{result['wall']:.1f} s, best val acc {result['best_val_acc']:.4f}",
                    flush=True,
                )
    ours, theirs = statistics.median(walls["sweeplab"]), statistics.median(walls["Keras Tuner"])
    print(
        f"median wall: sweeplab {ours:.1f} s, Keras Tuner {theirs:.1f} s, ratio "
        f"{ours / theirs:.3f} ({args.trials} trials, {args.epochs} epochs each, batch 256)"
    )


if __name__ == "__main__":
    main()
