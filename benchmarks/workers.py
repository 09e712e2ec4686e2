"""Throughput of one sweep run with 1 worker, 2 workers, joblib batches of 2, and 3 workers
on PostgreSQL: finished trials per hour and the share of worker time spent outside trials.

python benchmarks/workers.py --data-dir ../shared/fashion-mnist

Every configuration runs the same 12-trial CNN sweep with a pruner, one after the other, on
this machine; the figures are read back from each study and its trial directories. Idle share
= 1 - (time spent in trials) / (slots x wall time), where slots is the number of trials that
can run at once, and a trial's time runs from its config being written to its last file write
(so a trial that waits for the rest of its batch is not counted as busy).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import optuna

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sweeplab.sweep import queries  # noqa: E402

SWEEP = (
    "hparams_search=cnn_optuna",
    "hydra/sweeper/pruner=hyperband",
    "trainer.max_epochs=3",
    "data.train_subset=12000",
    "callbacks.rich_progress_bar=null",
)


def run(name: str, data_dir: str, logs: Path, env: dict[str, str], *extra: str) -> dict:
    storages = [o.split("=", 1)[1] for o in extra if o.startswith("hydra.sweeper.storage=")]
    storage = storages[0] if storages else f"sqlite:///{logs / 'sweeps' / name / 'optuna.db'}"
    command = [
        sys.executable,
        str(ROOT / "train.py"),
        "-m",
        f"paths.log_dir={logs}",
        f"data.data_dir={data_dir}",
        f"name={name}",
        *SWEEP,
        *extra,
    ]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"{name} failed:\n{done.stderr[-3000:]}")
    study = optuna.load_study(study_name=name, storage=storage)
    trials = [t for t in study.trials if queries.ran(t) and t.datetime_complete]
    busy = sum(_time_in_trial(logs / "sweeps" / name / f"trial_{t.number}") for t in trials)
    return {
        "name": name,
        "wall": wall,
        "finished": queries.count_finished(study),
        "pruned": queries.count(study, optuna.trial.TrialState.PRUNED),
        "epochs": sum(len(t.intermediate_values) for t in trials),
        "busy": busy,
    }


def _time_in_trial(trial_dir: Path) -> float:
    started = (trial_dir / ".hydra" / "config.yaml").stat().st_mtime
    # not through links: W&B links each run's debug-core.log to one log the service keeps on writing
    files = [p for p in trial_dir.rglob("*") if p.is_file() and not p.is_symlink()]
    ended = max(p.stat().st_mtime for p in files)
    return ended - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--postgres", help="a PostgreSQL URL; by default a throwaway server")
    args = parser.parse_args()
    env = {**os.environ, "WANDB_MODE": "offline"}
    with ExitStack() as stack:
        logs = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        postgres = args.postgres
        if postgres is None:
            from tests.services import postgres_server

            postgres = stack.enter_context(postgres_server()).new_database("bench")
        configurations = [
            ("one_worker", 1, ()),
            ("two_workers", 2, ("hydra.sweeper.workers=2",)),
            (
                "joblib_batches",
                2,
                ("hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "hydra.sweeper.n_jobs=2"),
            ),
            (
                "three_workers_pg",
                3,
                ("hydra.sweeper.workers=3", f"hydra.sweeper.storage={postgres}"),
            ),
        ]
        print("| configuration | wall (s) | finished | pruned | epochs | trials/hour | idle |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for name, slots, extra in configurations:
            r = run(name, args.data_dir, logs, env, "hydra.sweeper.n_trials=12", *extra)
            idle = 1 - r["busy"] / (slots * r["wall"])
            print(
                f"| {name} | {r['wall']:.0f} | {r['finished']} | {r['pruned']} | {r['epochs']} "
                f"| {r['finished'] * 3600 / r['wall']:.0f} | {idle:.0%} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
