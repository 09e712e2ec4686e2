"""The test servers really work: a shared Optuna study on PostgreSQL, GPU jobs on SLURM."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import submitit

from tests.services import PostgresServer, SlurmCluster

# Every test here starts PostgreSQL or SLURM and processes on them: CI only.
pytestmark = pytest.mark.slow

WORKER = """
import os, sys, time
import optuna

def objective(trial):
    trial.set_user_attr("pid", os.getpid())
    time.sleep(0.02)
    return trial.suggest_float("x", -1.0, 1.0) ** 2

optuna.logging.set_verbosity(optuna.logging.WARNING)
study = optuna.load_study(study_name="shared", storage=sys.argv[1])
study.optimize(objective, n_trials=int(sys.argv[2]))
"""


def test_two_processes_share_an_optuna_study_on_postgres(postgres: PostgresServer) -> None:
    url = postgres.new_database("two_workers")
    optuna.create_study(study_name="shared", storage=url)
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, url, "8"], stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    for worker in workers:
        _, errors = worker.communicate(timeout=60)
        assert worker.returncode == 0, errors

    trials = optuna.load_study(study_name="shared", storage=url).trials
    assert len(trials) == 16
    assert sorted(trial.number for trial in trials) == list(range(16))
    assert {trial.state for trial in trials} == {optuna.trial.TrialState.COMPLETE}
    pids = [trial.user_attrs["pid"] for trial in trials]
    assert sorted(pids.count(worker.pid) for worker in workers) == [8, 8]


def gpu_and_host(rendezvous: str, parties: int) -> tuple[str | None, str]:
    """Run as a SLURM job: wait until ``parties`` jobs run at once, then report GPU and host."""
    Path(rendezvous, os.environ["SLURM_JOB_ID"]).touch()
    deadline = time.monotonic() + 60
    while len(os.listdir(rendezvous)) < parties:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {os.listdir(rendezvous)} of {parties} jobs ran at once")
        time.sleep(0.1)
    return os.environ.get("CUDA_VISIBLE_DEVICES"), socket.gethostname()


@pytest.fixture
def executor(
    slurm: SlurmCluster,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> submitit.AutoExecutor:
    """A submitit executor for the test cluster, one GPU per job."""
    for name, value in slurm.env.items():
        monkeypatch.setenv(name, value)
    executor = submitit.AutoExecutor(folder=tmp_path / "submitit", cluster="slurm")
    executor.update_parameters(slurm_partition=slurm.partition, gpus_per_node=1, timeout_min=5)
    return executor


def test_concurrent_slurm_jobs_get_distinct_gpus(
    slurm: SlurmCluster,
    executor: submitit.AutoExecutor,
    tmp_path: Path,
) -> None:
    rendezvous = tmp_path / "rendezvous"
    rendezvous.mkdir()
    jobs = [executor.submit(gpu_and_host, str(rendezvous), 2) for _ in range(2)]

    results = [job.result() for job in jobs]

    # SLURM's gres/gpu plugin numbers the node's GPUs 0..n-1 and gives each job its own.
    assert sorted(gpu for gpu, _ in results) == ["0", "1"]
    assert {host for _, host in results} == {slurm.node}


def test_slurm_runs_a_command_function(executor: submitit.AutoExecutor) -> None:
    code = "import os; print(os.environ['SLURM_JOB_ID'], os.environ['CUDA_VISIBLE_DEVICES'])"
    job = executor.submit(submitit.helpers.CommandFunction([sys.executable, "-c", code]))

    job_id, gpu = job.result().split()

    assert job_id == job.job_id
    assert gpu in {"0", "1"}
