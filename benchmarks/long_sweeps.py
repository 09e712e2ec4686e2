"""Long sweeps: epochs lost per killed worker, how far a time budget overruns, and what
finishing a killed trial costs.

python benchmarks/long_sweeps.py kills --data-dir ../shared/fashion-mnist
python benchmarks/long_sweeps.py budget --data-dir ../shared/fashion-mnist
python benchmarks/long_sweeps.py resume --data-dir ../shared/fashion-mnist

``kills``: a CNN sweep of 12 trials x 6 epochs (no pruner, so that every trial trains all its
epochs on both sides) run by two worker processes on one SQLite study (as two machines
would), once undisturbed and once with a worker killed (SIGKILL) at a random epoch of each of
3 trials and a new worker started in its place, as a preempted node comes back. Epochs
trained in all: each trained trial's own (its metrics.json times the epochs its process ran)
and each killed trial's reported ones. Retrained per kill: the epochs trained for a killed
trial's parameters (the killed run's and its retry's) beyond one whole trial; the totals of
the two sides differ also by the trials each sampler proposed, and by repeats whose value was
reused without training.

``budget``: the reference CNN sweep (``hparams_search=cnn_optuna``) asked for 100 trials with
``hydra.sweeper.timeout`` at each budget: the command's wall time minus the budget, next to
the longest epoch, since the budget may be overrun by at most one epoch plus the reports.

``resume``: a one-trial CNN sweep of 8 epochs on the full training set, run whole, and
killed (SIGKILL) once its trial has reported ``--kill-at`` epochs and then run again with the
same command; the sides alternate over ``--rounds``; one process, with every core. The rerun's
wall time (the heartbeat's grace period, 6 s here, included) against the whole trial's, and
the epochs each command trained.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import sqlalchemy.exc
from optuna.trial import TrialState

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sweeplab.sweep import queries  # noqa: E402
from sweeplab.sweep import study as stored  # noqa: E402

KILL_SWEEP = (
    "hparams_search=cnn_optuna",
    "hydra/sweeper/pruner=none",  # every trial trains all its epochs: the sides compare
    "name=kills",
    "trainer.max_epochs=6",
    "data.train_subset=3000",
    "hydra.sweeper.n_trials=12",
    "hydra.sweeper.heartbeat.interval=2",
    "hydra.sweeper.heartbeat.grace_period=6",
    "logger=none",
    "callbacks.rich_progress_bar=null",
)


def _command(data_dir: str, logs: Path, *overrides: str) -> list[str]:
    return [
        sys.executable,
        str(ROOT / "train.py"),
        "-m",
        f"paths.log_dir={logs}",
        f"data.data_dir={data_dir}",
        *overrides,
    ]


def _env(one_thread: bool = True) -> dict[str, str]:
    """The sweeps' environment: one torch thread per process unless ``one_thread`` is false
    (a single process then has every core)."""
    env = dict(os.environ, WANDB_MODE="offline", OMP_NUM_THREADS="1")
    if not one_thread:
        env.pop("OMP_NUM_THREADS")
    env.pop("SWEEPLAB_STORAGE", None)
    return env


def _study(logs: Path, name: str) -> optuna.Study | None:
    db = logs / "sweeps" / name / "optuna.db"
    if not db.is_file():
        return None
    try:
        return optuna.load_study(study_name=name, storage=f"sqlite:///{db}")
    except (KeyError, sqlalchemy.exc.OperationalError):  # the sweep is still creating it
        return None


def kills(data_dir: str, n_kills: int, seed: int) -> None:
    rng = random.Random(seed)
    header = ["sweep", "workers killed", "finished", "trained", "failed (killed)"]
    header += ["epochs trained", "epochs retrained per kill", "lost (recorded)", "wall (s)"]
    print("| " + " | ".join(header) + " |")
    print("|" + " --- |" * len(header))
    for side in ("undisturbed", "killed"):
        with tempfile.TemporaryDirectory() as tmp:
            logs = Path(tmp)
            started = time.perf_counter()
            done = _two_workers(data_dir, logs, n_kills if side == "killed" else 0, rng)
            wall = time.perf_counter() - started
            study = _study(logs, "kills")
            assert study is not None
            sweep_dir = logs / "sweeps" / "kills"
            trials = queries.reported_trials(study)
            trained = [t for t in trials if t.state in queries.FINISHED and queries.ran(t)]
            epochs = sum(_own_epochs(sweep_dir, t) for t in trained)
            epochs += sum(queries.epochs_run(t) for t in trials if t.state == TrialState.FAIL)
            retrained = _retrained(study, sweep_dir)
            per_kill = f"{sum(retrained) / len(retrained):.2f}" if retrained else "-"
            lost = sum(int(t.user_attrs.get(stored.EPOCHS_LOST, 0)) for t in trials)
            failed = sum(1 for t in trials if t.state == TrialState.FAIL)
            row = [side, done, queries.count_finished(study), len(trained), failed, epochs]
            print("| " + " | ".join(map(str, [*row, per_kill, lost, f"{wall:.0f}"])) + " |")


def _own_epochs(sweep_dir: Path, trial: optuna.trial.FrozenTrial) -> int:
    """The epochs a finished trial's own process trained (its metrics.json times each; a
    retry's carried-over epochs are not among them)."""
    record = sweep_dir / f"trial_{trial.number}" / "metrics.json"
    return len(json.loads(record.read_text())["epoch_seconds"])


def _retrained(study: optuna.Study, sweep_dir: Path) -> list[int]:
    """For each killed trial, the epochs trained for its parameters beyond one whole trial:
    the killed run's reported epochs plus its retry's own, minus ``trainer.max_epochs``. The
    count is per trial, so the two sides' samplers proposing different (or repeated,
    reused-value) trials after a kill does not enter it."""
    max_epochs = int(next(o for o in KILL_SWEEP if "max_epochs" in o).split("=")[1])
    return [
        queries.epochs_run(study.trials[failed]) + _own_epochs(sweep_dir, retry) - max_epochs
        for retry in study.trials
        if (failed := queries.retry_of(retry)) is not None and retry.state in queries.FINISHED
    ]


def _two_workers(data_dir: str, logs: Path, n_kills: int, rng: random.Random) -> int:
    """Run the sweep on two worker processes until it ends, killing one at a random epoch of
    ``n_kills`` trials and starting another in its place; returns the kills done."""
    env = _env()
    command = _command(data_dir, logs, *KILL_SWEEP)
    logs.mkdir(parents=True, exist_ok=True)
    workers = [_start(command, env, logs, k) for k in range(2)]
    done = 0
    killed: set[int] = set()
    at_epoch = rng.randint(1, 5)
    while any(w.poll() is None for w in workers):
        time.sleep(0.5)
        study = _study(logs, "kills") if done < n_kills else None
        if study is None:
            continue
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            pid = int(trial.user_attrs.get(stored.WORKER, "x:0").split(":")[1].split(" ")[0])
            # a kill in each of n_kills trials of their own (a retry starts with the epochs it
            # carries over)
            if queries.retry_of(trial) is not None or trial.number in killed:
                continue
            if len(trial.intermediate_values) < at_epoch:
                continue
            victim = next((w for w in workers if w.pid == pid and w.poll() is None), None)
            if victim is None:
                continue
            victim.send_signal(signal.SIGKILL)
            victim.wait()
            killed.add(trial.number)
            done += 1
            print(f"killed worker {pid} in trial {trial.number} after {at_epoch} epoch(s)")
            workers.append(_start(command, env, logs, len(workers)))
            at_epoch = rng.randint(1, 5)
            break
    return done


def _start(command: list[str], env: dict[str, str], logs: Path, k: int) -> subprocess.Popen:
    with (logs / f"worker_{k}.log").open("w") as out:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


def budget(data_dir: str, budgets: list[int]) -> None:
    header = ["timeout (s)", "wall (s)", "overrun (s)", "s per epoch, slowest trial"]
    header += ["finished", "pruned at the budget", "stopped by"]
    print("| " + " | ".join(header) + " |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for seconds in budgets:
        with tempfile.TemporaryDirectory() as tmp:
            logs = Path(tmp)
            command = _command(
                data_dir,
                logs,
                "hparams_search=cnn_optuna",
                "name=budget",
                "hydra.sweeper.n_trials=100",
                f"hydra.sweeper.timeout={seconds}",
                "logger=none",
                "callbacks.rich_progress_bar=null",
            )
            started = time.perf_counter()
            subprocess.run(command, cwd=ROOT, env=_env(), capture_output=True, check=True)
            wall = time.perf_counter() - started
            study = _study(logs, "budget")
            assert study is not None
            trials = queries.reported_trials(study)
            epochs = [
                d / e
                for t in trials
                if (d := queries.duration_s(t)) and (e := queries.epochs_run(t))
            ]
            at_budget = sum(1 for t in trials if stored.ENDED_BY in t.user_attrs)
            print(
                f"| {seconds} | {wall:.0f} | {wall - seconds:+.0f} | {max(epochs):.0f} | "
                f"{queries.count_finished(study)} | {at_budget} | {queries.stopped_by(study)} |"
            )


RESUME_SWEEP = (
    "hparams_search=cnn_optuna",
    "name=resume",
    "trainer.max_epochs=8",
    "hydra.sweeper.n_trials=1",
    "hydra.sweeper.heartbeat.interval=2",
    "hydra.sweeper.heartbeat.grace_period=6",
    "logger=none",
    "callbacks.rich_progress_bar=null",
)


def resume(data_dir: str, kill_at: int, rounds: int) -> None:
    print("| round | command | epochs trained by it | wall (s) |")
    print("| --- | --- | --- | --- |")
    ratios = []
    for k in range(1, rounds + 1):
        with tempfile.TemporaryDirectory() as whole, tempfile.TemporaryDirectory() as killed:
            full_wall, full_epochs = _timed_sweep(data_dir, Path(whole))
            print(f"| {k} | whole trial | {full_epochs} | {full_wall:.0f} |")
            logs = Path(killed)
            command = _command(data_dir, logs, *RESUME_SWEEP)
            process = _start(command, _env(one_thread=False), logs, 0)
            while True:  # until the trial has reported kill_at epochs
                time.sleep(0.2)
                study = _study(logs, "resume")
                trials = study.get_trials(deepcopy=False) if study else []
                if trials and len(trials[0].intermediate_values) >= kill_at:
                    break
            process.send_signal(signal.SIGKILL)
            process.wait()
            print(f"| {k} | killed after {kill_at} epochs | {kill_at} | - |")
            rerun_wall, rerun_epochs = _timed_sweep(data_dir, logs)
            print(f"| {k} | the same command again | {rerun_epochs} | {rerun_wall:.0f} |")
            ratios.append(rerun_wall / full_wall)
    print(f"\nrerun / whole trial, wall: {', '.join(f'{r:.2f}' for r in ratios)}")


def _timed_sweep(data_dir: str, logs: Path) -> tuple[float, int]:
    """Run the resume sweep to its end: its wall time, and the epochs its process trained."""
    started = time.perf_counter()
    command = _command(data_dir, logs, *RESUME_SWEEP)
    subprocess.run(command, cwd=ROOT, env=_env(one_thread=False), capture_output=True, check=True)
    wall = time.perf_counter() - started
    study = _study(logs, "resume")
    assert study is not None
    [finished] = [t for t in study.trials if t.state in queries.FINISHED]
    record = logs / "sweeps" / "resume" / f"trial_{finished.number}" / "metrics.json"
    return wall, len(json.loads(record.read_text())["epoch_seconds"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("kills", "budget", "resume"))
    parser.add_argument("--data-dir", default=os.environ.get("FASHION_MNIST_DIR"))
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budgets", type=int, nargs="+", default=[45, 60, 120, 300])
    parser.add_argument("--kill-at", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if args.what == "kills":
        kills(args.data_dir, args.kills, args.seed)
    elif args.what == "budget":
        budget(args.data_dir, args.budgets)
    else:
        resume(args.data_dir, args.kill_at, args.rounds)


if __name__ == "__main__":
    main()
