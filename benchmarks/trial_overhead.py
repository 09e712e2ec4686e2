"""What a sweep spends outside its trials' epochs: per-trial overhead and the engine's ratio.

python benchmarks/trial_overhead.py --data-dir ../shared/fashion-mnist
python benchmarks/trial_overhead.py --data-dir ../shared/fashion-mnist --against a2a7c05 \
    --trials 6 --rounds 2

Runs one sweep of the reference CNN space (batch 256, 2 epochs per trial, all 57,000 training
images, W&B offline as users run it) and reads back, per trial, its wall time in the study
and the seconds of its epochs (training + validation, from metrics.json). Overhead = trial
wall time - epoch seconds: config composition, data set-up, W&B, Lightning set-up,
checkpoints. Engine ratio = the sweep command's wall time / all epoch seconds.

``--against COMMIT`` runs the same sweep from a checkout of COMMIT (a temporary git worktree)
and from this tree, alternating, ``--rounds`` times, with a seeded sampler so that both sides
train the same trials: their absolute overheads compare directly.
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
from dataclasses import dataclass
from pathlib import Path

import optuna

ROOT = Path(__file__).resolve().parents[1]
CNN_SWEEP = Path("sweeps") / "cnn_optuna"  # under paths.log_dir


def run_cnn_sweep(
    logs: str, data_dir: str, trials: int, overrides: list[str], root: Path = ROOT
) -> tuple[float, optuna.Study]:
    """Sweep the reference CNN space as a user does (batch 256, 2 epochs per trial, W&B
    offline) into ``logs`` with the code under ``root``; returns the command's wall time and
    the study."""
    command = [
        sys.executable,
        str(root / "train.py"),
        "-m",
        "hparams_search=cnn_optuna",
        "objective=val_acc",
        f"paths.log_dir={logs}",
        f"data.data_dir={Path(data_dir).resolve()}",
        "data.batch_size=256",
        "trainer.max_epochs=2",
        f"hydra.sweeper.n_trials={trials}",
        "callbacks.rich_progress_bar=null",
        *overrides,
    ]
    # PYTHONPATH first, so that another checkout's sweeplab wins over the installed one
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONPATH": str(root / "src")}
    started = time.perf_counter()
    done = subprocess.run(command, cwd=root, env=env, capture_output=True)
    wall = time.perf_counter() - started
    if done.returncode:
        sys.exit(done.stderr.decode()[-3000:])
    storage = f"sqlite:///{Path(logs) / CNN_SWEEP}/optuna.db"
    return wall, optuna.load_study(study_name="cnn_optuna", storage=storage)


@dataclass
class SweepTimes:
    wall: float
    epochs: float  # all trained trials' training and validation epochs
    trial_overheads: list[float]  # per trained trial: its wall time - its epochs

    def describe(self) -> str:
        overheads = self.trial_overheads
        return (
            f"{len(overheads)} trained trials, wall {self.wall:.1f} s, epochs {self.epochs:.1f} "
            f"s, overhead {self.wall - self.epochs:.1f} s, engine ratio "
            f"{self.wall / self.epochs:.3f}; per-trial overhead median "
            f"{statistics.median(overheads):.2f} s (min {min(overheads):.2f}, "
            f"max {max(overheads):.2f})"
        )


def time_sweep(data_dir: str, trials: int, overrides: list[str], root: Path = ROOT) -> SweepTimes:
    with tempfile.TemporaryDirectory() as logs:
        wall, study = run_cnn_sweep(logs, data_dir, trials, overrides, root)
        overheads, epoch_total = [], 0.0
        for trial in study.trials:
            record = Path(logs) / CNN_SWEEP / f"trial_{trial.number}" / "metrics.json"
            if not record.is_file():  # a reused repeat: no training, no overhead
                continue
            epochs = sum(json.loads(record.read_text())["epoch_seconds"])
            trial_wall = (trial.datetime_complete - trial.datetime_start).total_seconds()
            overheads.append(trial_wall - epochs)
            epoch_total += epochs
    return SweepTimes(wall, epoch_total, overheads)


def against(commit: str, args: argparse.Namespace) -> None:
    known = ["git", "-C", str(ROOT), "rev-parse", "--verify", "--quiet", f"{commit}^{{commit}}"]
    if subprocess.run(known, capture_output=True).returncode:
        sys.exit(f"--against {commit}: this repository has no such commit; give a commit hash.")
    with tempfile.TemporaryDirectory() as parent:
        checkout = Path(parent) / "checkout"
        git = ["git", "-C", str(ROOT), "worktree"]
        subprocess.run([*git, "add", "--detach", str(checkout), commit], check=True)
        overrides = ["hydra.sweeper.sampler.seed=0", *args.overrides]
        try:
            for round_ in range(1, args.rounds + 1):
                for side, root in ((commit, checkout), ("this tree", ROOT)):
                    times = time_sweep(args.data_dir, args.trials, overrides, root)
                    print(f"round {round_}, {side}: {times.describe()}", flush=True)
        finally:
            subprocess.run([*git, "remove", "--force", str(checkout)], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--overrides", nargs="*", default=[])
    parser.add_argument("--against", metavar="COMMIT", help="compare with this git commit")
    parser.add_argument("--rounds", type=int, default=2, help="with --against")
    args = parser.parse_args()
    if args.against:
        against(args.against, args)
    else:
        print(time_sweep(args.data_dir, args.trials, args.overrides).describe())


if __name__ == "__main__":
    main()
