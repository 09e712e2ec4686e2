"""What a sweep spends outside its trials' epochs: per-trial overhead and the engine's ratio.

python benchmarks/trial_overhead.py --data-dir ../shared/fashion-mnist

Runs one sweep of the reference CNN space (batch 256, 2 epochs per trial, all 57,000 training
images, W&B offline as users run it) and reads back, per trial, its wall time in the study
and the seconds of its epochs (training + validation, from metrics.json). Overhead = trial
wall time - epoch seconds: config composition, data set-up, W&B, Lightning set-up and the
sanity check, checkpoints. Engine ratio = the sweep command's wall time / all epoch seconds.
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

import optuna

ROOT = Path(__file__).resolve().parents[1]
CNN_SWEEP = Path("sweeps") / "cnn_optuna"  # under paths.log_dir


def run_cnn_sweep(
    logs: str, data_dir: str, trials: int, overrides: list[str]
) -> tuple[float, optuna.Study]:
    """Sweep the reference CNN space as a user does (batch 256, 2 epochs per trial, W&B
    offline) into ``logs``; returns the command's wall time and the study."""
    command = [
        sys.executable,
        str(ROOT / "train.py"),
        "-m",
        "hparams_search=cnn_optuna",
        "objective=val_acc",
        f"paths.log_dir={logs}",
        f"data.data_dir={data_dir}",
        "data.batch_size=256",
        "trainer.max_epochs=2",
        f"hydra.sweeper.n_trials={trials}",
        "callbacks.rich_progress_bar=null",
        *overrides,
    ]
    started = time.perf_counter()
    done = subprocess.run(
        command, cwd=ROOT, env={**os.environ, "WANDB_MODE": "offline"}, capture_output=True
    )
    wall = time.perf_counter() - started
    if done.returncode:
        sys.exit(done.stderr.decode()[-3000:])
    storage = f"sqlite:///{Path(logs) / CNN_SWEEP}/optuna.db"
    return wall, optuna.load_study(study_name="cnn_optuna", storage=storage)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--overrides", nargs="*", default=[])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as logs:
        wall, study = run_cnn_sweep(logs, args.data_dir, args.trials, args.overrides)
        sweep_dir = Path(logs) / CNN_SWEEP
        overheads, epoch_total = [], 0.0
        for trial in study.trials:
            record = sweep_dir / f"trial_{trial.number}" / "metrics.json"
            if not record.is_file():  # a reused repeat: no training, no overhead
                continue
            epochs = sum(json.loads(record.read_text())["epoch_seconds"])
            trial_wall = (trial.datetime_complete - trial.datetime_start).total_seconds()
            overheads.append(trial_wall - epochs)
            epoch_total += epochs
    print(f"{len(overheads)} trained trials of {args.trials}; sweep wall {wall:.1f} s")
    print(f"epoch seconds in all: {epoch_total:.1f} s; engine ratio {wall / epoch_total:.3f}")
    print(
        f"per-trial overhead: median {statistics.median(overheads):.2f} s "
        f"(min {min(overheads):.2f}, max {max(overheads):.2f})"
    )


if __name__ == "__main__":
    main()
