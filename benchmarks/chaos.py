"""Chaos: the faults of tests/test_faults.py at a larger scale, as a markdown table of what each
study ended with and whether any trial was lost or ran twice.

python benchmarks/chaos.py --data-dir ../shared/fashion-mnist
python benchmarks/chaos.py --data-dir ../shared/fashion-mnist --faults "SLURM requeue"

Needs root (a tmpfs is mounted), PostgreSQL and a single-node SLURM installed (tests/services.py
starts them on private ports and removes them). Each fault runs one MLP sweep; the figures are
read back from the study and the trial directories: lost = trials left running or waiting,
finished trials without their metrics.json, or finished results changed by the fault;
duplicated = run directories with metrics.json that no finished trial owns, or a retried
trial whose original also finished.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sweeplab.sweep import queries  # noqa: E402
from sweeplab.sweep import study as stored  # noqa: E402
from tests.conftest import sweep  # noqa: E402
from tests.services import postgres_server, slurm_cluster  # noqa: E402
from tests.test_faults import (  # noqa: E402
    REQUEUES,
    fill,
    in_background,
    running_with_epochs,
    wait_for,
)

MLP = ("hparams_search=mlp_optuna", "logger=none", "data.train_subset=3000")


def outcome(study: optuna.Study, sweep_dir: Path, before: dict[int, Any] | None = None) -> dict:
    """The study's end state, and the trials lost or duplicated."""
    counts = {s: queries.count(study, s) for s in (*queries.FINISHED, TrialState.FAIL)}
    finished = [t for t in study.trials if queries.ran(t) and t.state in queries.FINISHED]
    dirs = {p.parent.name for p in sweep_dir.glob("trial_*/metrics.json")}
    owned = {f"trial_{t.number}" for t in finished}
    changed = [n for n, v in (before or {}).items() if study.trials[n].value != v]
    retried = [queries.retry_of(t) for t in finished if queries.retry_of(t) is not None]
    return {
        "complete": counts[TrialState.COMPLETE],
        "pruned": counts[TrialState.PRUNED],
        "failed": counts[TrialState.FAIL],
        "lost": queries.count(study, TrialState.RUNNING, TrialState.WAITING)
        + len(owned - dirs)
        + len(changed),
        "duplicated": len(dirs - owned)
        + sum(1 for n in retried if study.trials[n].state in queries.FINISHED),
    }


def postgres_restart(data_dir: str, root: Path, env: dict[str, str]) -> dict:
    with postgres_server() as server:
        url = server.new_database("chaos")
        thread, out = in_background(
            lambda: sweep(
                Path(data_dir),
                root,
                env,
                *MLP,
                "trainer.max_epochs=6",
                "hydra.sweeper.n_trials=8",
                "hydra.sweeper.workers=2",
                f"hydra.sweeper.storage={url}",
                "hydra.sweeper.heartbeat.interval=1",
                "hydra.sweeper.heartbeat.grace_period=20",
                stops_after_work=True,
            )
        )
        study = lambda: optuna.load_study(study_name="mlp_optuna", storage=url)  # noqa: E731
        for epochs, down_s in ((1, 3), (2, 10)):  # a quick restart, then a longer outage
            wait_for(lambda e=epochs: running_with_epochs(study, e), "a running trial", thread)
            server.restart(down_s=down_s)
            time.sleep(5)
        thread.join()
        assert out["result"].returncode == 0, out["result"].stderr[-3000:]
        return {
            "what": "PostgreSQL stopped (fast) and restarted twice mid-trial: down 3 s, then "
            "10 s; 2 workers",
            "n_trials": 8,
            "exit": out["result"].returncode,
            **outcome(study(), root / "sweeps" / "mlp_optuna"),
        }


def slurm_requeue(data_dir: str, root: Path, env: dict[str, str]) -> dict:
    with postgres_server() as server, slurm_cluster() as cluster:
        url = server.new_database("chaos")
        slurm_env = {**env, **cluster.env}
        thread, out = in_background(
            lambda: sweep(
                Path(data_dir),
                root,
                slurm_env,
                *MLP,
                "trainer.max_epochs=6",
                "hydra.sweeper.n_trials=6",
                f"hydra.sweeper.storage={url}",
                "hydra/sweeper/cluster=slurm",
                f"hydra.sweeper.cluster.partition={cluster.partition}",
                "hydra.sweeper.workers=2",
                "hydra.sweeper.cluster.cpus_per_worker=1",
                "hydra.sweeper.cluster.mem_gb=1",
                "hydra.sweeper.cluster.timeout_min=10",
                "hydra.sweeper.heartbeat.interval=1",
                "hydra.sweeper.heartbeat.grace_period=5",
                stops_after_work=True,
            )
        )
        study = lambda: optuna.load_study(study_name="mlp_optuna", storage=url)  # noqa: E731
        requeued = []
        # each way in once, on the job running a trial at its 2nd epoch; SLURM then holds the
        # requeued job for its own delay (about 2 minutes here) before it runs again
        for how in REQUEUES.values():
            [victim, *_] = wait_for(
                lambda: [t for t in running_with_epochs(study, 2) if t.number not in requeued],
                "a running trial",
                thread,
                timeout=300,
            )
            job = re.search(r"SLURM job (\d+)", victim.user_attrs[stored.WORKER])
            command = [*how, job.group(1)] if job else ["false"]
            subprocess.run(command, env={**os.environ, **cluster.env}, check=True)
            requeued.append(victim.number)
        thread.join()
        final = study()
        resumed = sum(1 for t in final.trials if stored.RESUMED_FROM in t.user_attrs)
        return {
            "what": "a worker's job requeued mid-trial by `scontrol requeue`, then another by "
            f"submitit's signal (SIGUSR2); 2 SLURM workers ({resumed} of 2 retries went on "
            "from the checkpoint)",
            "n_trials": 6,
            "exit": out["result"].returncode,
            **outcome(final, root / "sweeps" / "mlp_optuna"),
        }


def full_disk(data_dir: str, root: Path, env: dict[str, str]) -> dict:
    storage = f"sqlite:///{root / 'optuna.db'}"
    logs = root / "logs"
    logs.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=30m", "tmpfs", str(logs)], check=True)
    try:
        sweep_dir = logs / "sweeps" / "mlp_optuna"
        run: Callable[..., Any] = lambda *extra: sweep(  # noqa: E731
            Path(data_dir),
            logs,
            env,
            *MLP,
            "trainer.max_epochs=3",
            f"hydra.sweeper.storage={storage}",
            *extra,
            stops_after_work=True,
        )
        run("hydra.sweeper.n_trials=3")
        before = {
            t.number: t.value
            for t in optuna.load_study(study_name="mlp_optuna", storage=storage).trials
        }
        filler = fill(logs, leave_kb=0)
        stopped = run("hydra.sweeper.n_trials=6")
        at_stop = outcome(
            optuna.load_study(study_name="mlp_optuna", storage=storage), sweep_dir, before
        )
        filler.unlink()
        resumed = run("hydra.sweeper.n_trials=6")
        final = outcome(
            optuna.load_study(study_name="mlp_optuna", storage=storage), sweep_dir, before
        )
        reason = "ENOSPC" if "No space left on device" in stopped.stderr else "?"
        return {
            "what": f"sweep dir on a 30 MB tmpfs, filled after 3 trials: the sweep stopped "
            f"(exit {stopped.returncode}, {reason}) at {at_stop['complete']} complete, "
            f"{at_stop['failed']} failed, lost {at_stop['lost']}; space freed, same command",
            "n_trials": 6,
            "exit": resumed.returncode,
            **final,
        }
    finally:
        subprocess.run(["umount", "-l", str(logs)], check=False)


FAULTS: dict[str, Callable[[str, Path, dict[str, str]], dict]] = {
    "PostgreSQL restart": postgres_restart,
    "SLURM requeue": slurm_requeue,
    "Full disk": full_disk,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--faults", nargs="+", choices=list(FAULTS), default=list(FAULTS))
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "FASHION_"))}
    rows = []
    for name in args.faults:
        fault = FAULTS[name]
        root = Path(tempfile.mkdtemp(prefix="sweeplab-chaos-"))
        started = time.monotonic()
        try:
            row = fault(args.data_dir, root, {**env, "HOME": str(root / "home")})
        finally:
            shutil.rmtree(root, ignore_errors=True)
        rows.append({"fault": name, **row, "wall_s": time.monotonic() - started})
        print(f"{name}: done in {rows[-1]['wall_s']:.0f} s", file=sys.stderr)
    columns = ["Fault", "What was done", "n_trials", "Exit", "Complete", "Pruned", "Failed"]
    columns += ["Lost", "Duplicated", "Wall s"]
    print(f"| {' | '.join(columns)} |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['fault']} | {r['what']} | {r['n_trials']} | {r['exit']} | {r['complete']} | "
            f"{r['pruned']} | {r['failed']} | {r['lost']} | {r['duplicated']} | {r['wall_s']:.0f} |"
        )


if __name__ == "__main__":
    main()
