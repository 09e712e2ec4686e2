"""Faults a long sweep meets, with the real parts: the PostgreSQL server restarted under the
workers, a SLURM worker job requeued mid-trial, and the sweep directory's disk full. Each test
ends by reading the study back: exactly n_trials finished, nothing running or waiting, and every
trained trial has its own ``trial_<n>/metrics.json`` (no trial lost, none run twice)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from optuna.trial import FrozenTrial, TrialState

from sweeplab.sweep import queries
from sweeplab.sweep import study as stored
from tests.conftest import sweep
from tests.services import PostgresServer, SlurmCluster

pytestmark = pytest.mark.slow  # every test runs a sweep on real servers or a real filesystem

MLP = ("hparams_search=mlp_optuna", "logger=none", "data.train_subset=400")


def trained(study: optuna.Study) -> list[FrozenTrial]:
    """Trials that ran a training (not a reused twin, not a surplus ask)."""
    return [t for t in study.trials if queries.ran(t)]


def check_exact(study: optuna.Study, sweep_dir: Path, n_trials: int) -> None:
    """Exactly ``n_trials`` finished, nothing left running or waiting, and each finished
    trained trial has exactly one run directory with its metrics.json: none lost, none run
    twice, none recorded without its run."""
    assert queries.count_finished(study) == n_trials, queries.state_counts(study)
    assert queries.count(study, TrialState.RUNNING, TrialState.WAITING) == 0
    finished = [t for t in trained(study) if t.state in queries.FINISHED]
    with_metrics = sorted(p.parent.name for p in sweep_dir.glob("trial_*/metrics.json"))
    assert with_metrics == sorted(f"trial_{t.number}" for t in finished)
    # a retried trial's parameters finished once: its failed original holds no value
    retried = [queries.retry_of(t) for t in finished if queries.retry_of(t) is not None]
    assert len(retried) == len(set(retried))
    assert all(study.trials[n].state == TrialState.FAIL for n in retried)


def in_background(call: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    """Run ``call`` (a blocking sweep) in a thread; its result lands in the dict."""
    out: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: out.update(result=call()), daemon=True)
    thread.start()
    return thread, out


def wait_for(
    ready: Callable[[], Any], what: str, thread: threading.Thread, timeout: float = 180
) -> Any:
    """Poll ``ready`` until it returns something truthy; fail if the sweep ends first."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if found := ready():
                return found
        except (KeyError, ValueError, optuna.exceptions.StorageInternalError):
            pass  # no study yet
        assert thread.is_alive(), f"the sweep ended before {what}"
        assert time.monotonic() < deadline, f"no {what} after {timeout:.0f} s"
        time.sleep(0.1)


def running_with_epochs(study: Callable[[], optuna.Study], epochs: int) -> list[FrozenTrial]:
    return [
        t
        for t in study().get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        if len(t.intermediate_values) >= epochs
    ]


# 1. The PostgreSQL server restarted while workers run trials.


def test_a_postgresql_restart_mid_sweep_loses_no_trial(
    fashion_dir: Path, tmp_path: Path, isolated_env: dict[str, str], postgres: PostgresServer
) -> None:
    """Two workers, trials reporting every epoch and beating every second; the server stops
    (fast: every connection cut) for 3 s mid-trial and comes back. Workers, trials and the
    command's progress reads wait for it and go on."""
    url = postgres.new_database("restarted")
    thread, out = in_background(
        lambda: sweep(
            fashion_dir,
            tmp_path,
            isolated_env,
            *MLP,
            "trainer.max_epochs=4",
            "hydra.sweeper.n_trials=4",
            "hydra.sweeper.workers=2",
            f"hydra.sweeper.storage={url}",
            "hydra.sweeper.heartbeat.interval=1",
            "hydra.sweeper.heartbeat.grace_period=20",
            stops_after_work=True,
        )
    )
    study = lambda: optuna.load_study(study_name="mlp_optuna", storage=url)  # noqa: E731
    running = wait_for(
        lambda: running_with_epochs(study, 1),
        "a trial past its first epoch",
        thread,
    )
    postgres.restart(down_s=3)
    thread.join(timeout=300)
    result = out["result"]
    assert result.returncode == 0, result.stderr[-3000:]
    sweep_dir = tmp_path / "sweeps" / "mlp_optuna"
    study = optuna.load_study(study_name="mlp_optuna", storage=url)
    check_exact(study, sweep_dir, 4)
    # the trials running through the restart finished themselves: nothing failed
    assert queries.count(study, TrialState.FAIL) == 0, [t.user_attrs for t in study.trials]
    assert all(study.trials[t.number].state in queries.FINISHED for t in running)
    logs = "".join(p.read_text() for p in (sweep_dir / "workers").glob("*.log"))
    assert "retrying in" in logs + result.stderr  # the wait was said, not silent


# 3. The disk under the sweep directory fills up.


@contextmanager
def small_filesystem(where: Path, size_mb: int) -> Iterator[Path]:
    """A tmpfs of ``size_mb`` MB mounted at ``where``; skipped, saying why, where this
    process may not mount one (not root, or no CAP_SYS_ADMIN in a container)."""
    where.mkdir(parents=True)
    mount = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mount.returncode:
        pytest.skip(f"cannot mount a small filesystem here: {mount.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(where: Path, leave_kb: int) -> Path:
    """Fill the filesystem of ``where`` up to ``leave_kb`` KB free, with one file."""
    filler = where / "filler"
    free = shutil.disk_usage(where).free - leave_kb * 1024
    with filler.open("wb") as f:
        f.write(b"\0" * max(0, free))
    return filler


def test_a_full_disk_fails_trials_with_its_reason_and_keeps_every_finished_result(
    fashion_dir: Path, tmp_path: Path, isolated_env: dict[str, str]
) -> None:
    """Sweep directory on a 20 MB tmpfs, study in a SQLite file elsewhere. Two trials finish;
    the disk fills; the resumed sweep's trials fail with ENOSPC until max_failure_rate stops
    it, keeping what finished; once space is freed, the same command finishes the study."""
    storage = f"sqlite:///{tmp_path / 'db' / 'optuna.db'}"
    (tmp_path / "db").mkdir()
    overrides = (*MLP, "trainer.max_epochs=2", f"hydra.sweeper.storage={storage}")
    with small_filesystem(tmp_path / "logs", size_mb=20) as logs:
        sweep_dir = logs / "sweeps" / "mlp_optuna"
        first = sweep(fashion_dir, logs, isolated_env, *overrides, "hydra.sweeper.n_trials=2")
        assert first.returncode == 0, first.stderr[-3000:]
        study = optuna.load_study(study_name="mlp_optuna", storage=storage)
        values = {t.number: t.value for t in study.trials}
        kept = {p: p.read_bytes() for p in sweep_dir.glob("trial_*/metrics.json")}
        results = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
        assert len(kept) == 2

        filler = fill(logs, leave_kb=0)
        full = sweep(
            fashion_dir,
            logs,
            isolated_env,
            *overrides,
            "hydra.sweeper.n_trials=4",
            stops_after_work=True,
        )
        assert full.returncode == 1, full.stderr[-3000:]
        assert "Traceback" not in full.stderr, full.stderr[-3000:]
        assert "Error: Stopping the sweep: 2 trials failed" in full.stderr
        assert "No space left on device" in full.stderr
        study = optuna.load_study(study_name="mlp_optuna", storage=storage)
        failed = study.get_trials(states=(TrialState.FAIL,))
        assert [t.number for t in failed] == [2, 3]
        assert all("No space left on device" in queries.error_of(t) for t in failed)
        # nothing that finished is lost or changed: values, metrics.json, the results file
        assert {t.number: t.value for t in study.trials if t.number < 2} == values
        assert {p: p.read_bytes() for p in sweep_dir.glob("trial_*/metrics.json")} == kept
        # the results file is the old one or a whole new one (written atomically), same best
        now = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
        assert (now["best_value"], now["best_params"]) == (
            results["best_value"],
            results["best_params"],
        )
        assert not list(sweep_dir.glob("**/*.tmp*"))  # no half-written result left behind

        filler.unlink()
        again = sweep(fashion_dir, logs, isolated_env, *overrides, "hydra.sweeper.n_trials=4")
        assert again.returncode == 0, again.stderr[-3000:]
        study = optuna.load_study(study_name="mlp_optuna", storage=storage)
        check_exact(study, sweep_dir, 4)
        assert queries.count(study, TrialState.FAIL) == 2  # the full disk's, kept as such


# 2. A SLURM worker job requeued mid-trial.


def release_requeued(job_id: str, slurm: SlurmCluster, timeout_s: float = 150) -> None:
    """Once SLURM has requeued the job (it is PENDING again), let it start now."""
    env = {**os.environ, **slurm.env}
    deadline = time.time() + timeout_s
    pending = False
    while time.time() < deadline:
        state = subprocess.run(
            ["squeue", "-h", "-j", job_id, "-o", "%T"], env=env, capture_output=True, text=True
        ).stdout.strip()
        if state == "PENDING":
            pending = True
            subprocess.run(
                ["scontrol", "update", f"JobId={job_id}", "StartTime=now"],
                env=env,
                capture_output=True,
                check=False,
            )
        elif pending or not state:  # running again, or gone
            return
        time.sleep(1)


REQUEUES = {
    # a preemption that requeues: SLURM stops the job (SIGTERM) and queues it again
    "scontrol requeue": ["scontrol", "requeue"],
    # submitit's signal, as SLURM sends it before the time limit: submitit requeues the job
    "submitit signal": ["scancel", "--signal=USR2"],
}


@pytest.mark.parametrize("requeue", list(REQUEUES))
def test_a_slurm_worker_requeued_mid_trial_resumes_its_trial(
    requeue: str,
    fashion_dir: Path,
    tmp_path: Path,
    isolated_env: dict[str, str],
    postgres: PostgresServer,
    slurm: SlurmCluster,
) -> None:
    """The one worker's job requeued mid-trial: the worker queues its trial again and exits,
    SLURM runs the job again, and its worker goes on with the trial from its last checkpoint;
    the sweep command waits for the job's next run."""
    url = postgres.new_database(re.sub(r"\W", "_", requeue))
    env = {**isolated_env, **slurm.env}
    thread, out = in_background(
        lambda: sweep(
            fashion_dir,
            tmp_path,
            env,
            *MLP,
            "trainer.max_epochs=30",
            "hydra.sweeper.n_trials=3",
            f"hydra.sweeper.storage={url}",
            "hydra/sweeper/cluster=slurm",
            f"hydra.sweeper.cluster.partition={slurm.partition}",
            "hydra.sweeper.workers=1",
            "hydra.sweeper.cluster.cpus_per_worker=1",
            "hydra.sweeper.cluster.mem_gb=1",
            "hydra.sweeper.cluster.timeout_min=10",
            "hydra.sweeper.heartbeat.interval=1",
            "hydra.sweeper.heartbeat.grace_period=5",
            stops_after_work=True,
        )
    )
    [victim, *_] = wait_for(
        lambda: running_with_epochs(
            lambda: optuna.load_study(study_name="mlp_optuna", storage=url), 2
        ),
        "a trial past its second epoch",
        thread,
        timeout=240,
    )
    job = re.search(r"SLURM job (\d+)", victim.user_attrs[stored.WORKER])
    assert job, victim.user_attrs
    sent = subprocess.run(
        [*REQUEUES[requeue], job.group(1)],
        env={**os.environ, **slurm.env},
        capture_output=True,
        text=True,
        check=False,
    )
    assert sent.returncode == 0, sent.stderr
    # SLURM holds a requeued batch job about two minutes before it may start again; a test
    # need not wait that long (a cluster's own delay is what it is)
    release_requeued(job.group(1), slurm)
    thread.join(timeout=400)
    result = out["result"]
    assert result.returncode == 0, result.stderr[-3000:]
    sweep_dir = tmp_path / "sweeps" / "mlp_optuna"
    study = optuna.load_study(study_name="mlp_optuna", storage=url)
    check_exact(study, sweep_dir, 3)
    stopped = study.trials[victim.number]
    assert stopped.state == TrialState.FAIL and stored.ERROR not in stopped.user_attrs
    [retry] = [t for t in study.trials if queries.retry_of(t) == victim.number]
    assert retry.state in queries.FINISHED and retry.params == victim.params
    assert retry.user_attrs.get(stored.RESUMED_FROM) == victim.number  # from its checkpoint
    if requeue == "submitit signal":  # submitit requeued the job, having stopped the worker
        logs = "".join(p.read_text(errors="replace") for p in sweep_dir.glob("slurm/*_log.*"))
        # with timeout_min=10, submitit takes any signal for the time limit's (it counts 10
        # minutes of margin), which only a job it can checkpoint comes back from
        assert "this job is timed-out" in logs and "Calling checkpoint method" in logs
        assert f"Requeued job {job.group(1)}" in logs, logs[-3000:]
