"""Several workers on one study, with real parts: local worker processes on SQLite, separate
sweep processes on a real PostgreSQL (as on several machines), a worker killed mid-trial, and
workers as jobs of a real SLURM."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from sweeplab.sweep import queries
from sweeplab.sweep import study as stored
from sweeplab.sweep.context import STORAGE_FROM_ENV
from sweeplab.sweep.storage import open_storage
from tests.conftest import QUICK, ROOT, inspect_wandb_run, load_study, sweep, sweeplab_cli
from tests.services import PostgresServer, SlurmCluster

# Every test here runs sweep processes (some on PostgreSQL or SLURM): CI only.
pytestmark = pytest.mark.slow

MLP = ("hparams_search=mlp_optuna", "trainer.max_epochs=1")
PASSWORD = "s3cret-pw"


def start_worker(
    fashion_dir: Path, logs: Path, env: dict[str, str], out: Path, *overrides: str
) -> subprocess.Popen:
    """A sweep process, as a user would start one on each machine."""
    with out.open("w") as f:
        return subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "train.py"),
                "-m",
                f"paths.log_dir={logs}",
                f"data.data_dir={fashion_dir}",
                *QUICK,
                *overrides,
            ],
            cwd=ROOT,
            env=env,
            stdout=f,
            stderr=subprocess.STDOUT,
        )


def ran_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return [t for t in study.trials if queries.ran(t)]


def check_study_done(study: optuna.Study, sweep_dir: Path, n_trials: int) -> None:
    """Exactly n_trials finished, nothing left running, and every trained trial has its own
    run directory (so no trial ran twice)."""
    assert queries.count_finished(study) == n_trials
    assert queries.count(study, TrialState.RUNNING, TrialState.WAITING) == 0
    trained = [t for t in ran_trials(study) if t.state in queries.FINISHED]
    assert sorted(p.name for p in sweep_dir.glob("trial_*") if (p / "metrics.json").is_file()) == (
        sorted(f"trial_{t.number}" for t in trained)
    )


def test_local_workers_share_one_study(
    fashion_dir: Path, tmp_path: Path, isolated_env: dict[str, str]
) -> None:
    result = sweep(
        fashion_dir,
        tmp_path,
        isolated_env,
        *MLP,
        "trainer.max_epochs=2",
        "logger=none",
        "hydra.sweeper.workers=2",
        "hydra.sweeper.n_trials=4",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    sweep_dir = tmp_path / "sweeps" / "mlp_optuna"
    study = load_study(sweep_dir)
    check_study_done(study, sweep_dir, 4)
    workers = {t.user_attrs[stored.WORKER] for t in ran_trials(study)}
    assert len(workers) == 2, workers  # both workers ran trials
    for k in (0, 1):
        [log] = (sweep_dir / "workers").glob(f"worker_{k}_*.log")  # by host and process
        assert "joins study mlp_optuna" in log.read_text()
    # the parent prints every trial's line from the storage, counting up
    output = result.stdout + result.stderr
    assert "4/4 finished" in output and "1/4 finished" in output
    # one row per trial, but never a surplus ask (two workers racing for the last place)
    rows = (sweep_dir / "trials.csv").read_text().count("\n") - 1
    assert rows == len(queries.reported_trials(study)) >= 4


def test_workers_stopped_by_failures_end_the_sweep_with_their_paragraph(
    fashion_dir: Path, tmp_path: Path, isolated_env: dict[str, str]
) -> None:
    result = sweep(
        fashion_dir,
        tmp_path,
        isolated_env,
        *MLP,
        "logger=none",
        "model/optimizer=sgd",
        "model.optimizer.lr=1e6",
        "hydra.sweeper.workers=2",
        "hydra.sweeper.n_trials=4",
        stops_after_work=True,  # the failed trials and their errors are kept
    )
    assert result.returncode == 1
    assert "Error: The workers stopped with 0 of 4 trials finished." in result.stderr
    assert re.search(r"Stopping the sweep: [23] trials failed", result.stderr)  # a worker's own
    assert "Traceback" not in result.stderr
    assert (tmp_path / "sweeps" / "mlp_optuna" / "trials.csv").is_file()


def test_local_workers_on_a_journal_file(
    fashion_dir: Path, tmp_path: Path, isolated_env: dict[str, str]
) -> None:
    journal = tmp_path / "shared" / "study.log"
    result = sweep(
        fashion_dir,
        tmp_path,
        isolated_env,
        *MLP,
        "logger=none",
        "hydra.sweeper.workers=2",
        "hydra.sweeper.n_trials=3",
        f"hydra.sweeper.storage=journal:{journal}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    study = optuna.load_study(study_name="mlp_optuna", storage=open_storage(f"journal:{journal}"))
    check_study_done(study, tmp_path / "sweeps" / "mlp_optuna", 3)
    best = sweeplab_cli("best", f"journal:{journal}", env=isolated_env)
    assert best.returncode == 0 and best.stdout.startswith("model=mlp "), best.stderr


def test_processes_on_postgresql_run_exactly_n_trials(
    fashion_dir: Path, tmp_path: Path, isolated_env: dict[str, str], postgres: PostgresServer
) -> None:
    """Three sweep processes (as on three machines) on one PostgreSQL study, the storage URL
    with a password given as the README says: in SWEEPLAB_STORAGE."""
    url = postgres.new_database("three_workers").replace("postgres@", f"postgres:{PASSWORD}@")
    env = {**isolated_env, "SWEEPLAB_STORAGE": url}
    outs = [tmp_path / f"worker_{k}.out" for k in range(3)]
    workers = [
        start_worker(fashion_dir, tmp_path, env, out, *MLP, "hydra.sweeper.n_trials=6")
        for out in outs
    ]
    for worker, out in zip(workers, outs, strict=True):
        assert worker.wait(timeout=600) == 0, out.read_text()[-3000:]
    sweep_dir = tmp_path / "sweeps" / "mlp_optuna"
    study = optuna.load_study(study_name="mlp_optuna", storage=url)
    check_study_done(study, sweep_dir, 6)
    assert len({t.user_attrs[stored.WORKER] for t in ran_trials(study)}) >= 2

    # each trained trial is one W&B run in the study's group
    for trial in ran_trials(study):
        [run_dir] = (sweep_dir / f"trial_{trial.number}").glob("wandb/offline-run-*")
        run = inspect_wandb_run(run_dir, env)
        assert run["config"]["group"] == "mlp_optuna"
        assert run["config"]["sweep_trial.number"] == trial.number
    # a URL with a password is not handed to trials, not even masked: they use the variable
    assert run["config"]["sweep_trial.storage"] == STORAGE_FROM_ENV

    # the password is nowhere sweeplab (or Hydra, given the env variable) wrote
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert PASSWORD.encode() not in path.read_bytes(), path


def test_a_password_written_into_the_storage_setting_is_refused_before_anything_is_written(
    fashion_dir: Path, tmp_path: Path, isolated_env: dict[str, str]
) -> None:
    url = f"postgresql://postgres:{PASSWORD}@127.0.0.1:9/optuna"
    result = sweep(
        fashion_dir, tmp_path / "logs", isolated_env, *MLP, f"hydra.sweeper.storage={url}"
    )
    assert result.returncode == 1
    assert "holds a password" in result.stderr and "Traceback" not in result.stderr
    assert PASSWORD not in result.stdout + result.stderr
    assert not (tmp_path / "logs").exists()


def test_a_password_read_from_another_variable_is_in_no_file(
    fashion_dir: Path, tmp_path: Path, isolated_env: dict[str, str], postgres: PostgresServer
) -> None:
    """hydra.sweeper.storage='${oc.env:DB_URL}', as the refusal above suggests: the sweep
    runs, and neither Hydra's files nor the trials' W&B runs hold the password."""
    url = postgres.new_database("from_variable").replace("postgres@", f"postgres:{PASSWORD}@")
    env = {**isolated_env, "DB_URL": url, "WANDB_MODE": "offline"}
    result = sweep(
        fashion_dir,
        tmp_path,
        env,
        *MLP,
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.storage=${oc.env:DB_URL}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert PASSWORD not in result.stdout + result.stderr
    study = optuna.load_study(study_name="mlp_optuna", storage=url)
    assert queries.count_finished(study) == 2
    written = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert any(path.name == "hydra.yaml" for path in written)
    assert any(path.suffix == ".wandb" for path in written)
    for path in written:
        assert PASSWORD.encode() not in path.read_bytes(), path


def test_a_killed_worker_s_trial_fails_by_heartbeat_and_is_retried(
    fashion_dir: Path, tmp_path: Path, isolated_env: dict[str, str], postgres: PostgresServer
) -> None:
    url = postgres.new_database("killed_worker")
    overrides = (
        "hparams_search=mlp_optuna",
        "trainer.max_epochs=40",
        "logger=none",
        "hydra.sweeper.n_trials=4",
        f"hydra.sweeper.storage={url}",
        "hydra.sweeper.heartbeat.interval=1",
        "hydra.sweeper.heartbeat.grace_period=4",
    )
    victim, survivor = (
        start_worker(fashion_dir, tmp_path, isolated_env, tmp_path / f"{name}.out", *overrides)
        for name in ("victim", "survivor")
    )
    deadline = time.monotonic() + 300
    while True:  # kill the victim once it has trained a few epochs of a trial
        study = optuna.load_study(study_name=None, storage=url) if _has_study(url) else None
        running = [
            t
            for t in (study.get_trials(states=(TrialState.RUNNING,)) if study else [])
            if t.user_attrs.get(stored.WORKER, "").endswith(f":{victim.pid}")
            and len(t.intermediate_values) >= 2
        ]
        if running:
            break
        assert victim.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    assert survivor.wait(timeout=600) == 0, (tmp_path / "survivor.out").read_text()[-3000:]

    [killed] = running
    trials = optuna.load_study(study_name="mlp_optuna", storage=url).trials
    assert trials[killed.number].state == TrialState.FAIL
    assert queries.error_of(trials[killed.number]) == queries.LOST_WORKER
    [retry] = [t for t in trials if queries.retry_of(t) == killed.number]
    assert retry.params == killed.params and retry.state == TrialState.COMPLETE
    assert queries.count_finished(study) == 4
    assert queries.count(study, TrialState.RUNNING, TrialState.WAITING) == 0


def _has_study(url: str) -> bool:
    return bool(optuna.get_all_study_names(url))


def test_slurm_workers_each_get_their_own_gpu(
    fashion_dir: Path,
    tmp_path: Path,
    isolated_env: dict[str, str],
    postgres: PostgresServer,
    slurm: SlurmCluster,
) -> None:
    url = postgres.new_database("slurm_workers")
    env = {**isolated_env, **slurm.env}
    result = sweep(
        fashion_dir,
        tmp_path,
        env,
        *MLP,
        "trainer.max_epochs=2",
        "logger=none",
        "hydra.sweeper.n_trials=4",
        f"hydra.sweeper.storage={url}",
        "hydra/sweeper/cluster=slurm",
        f"hydra.sweeper.cluster.partition={slurm.partition}",
        "hydra.sweeper.workers=2",
        "hydra.sweeper.cluster.cpus_per_worker=1",
        "hydra.sweeper.cluster.mem_gb=1",
        "hydra.sweeper.cluster.timeout_min=10",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert "Submitted 2 SLURM jobs" in output and "4/4 finished" in output
    sweep_dir = tmp_path / "sweeps" / "mlp_optuna"
    study = optuna.load_study(study_name="mlp_optuna", storage=url)
    check_study_done(study, sweep_dir, 4)
    assert all("SLURM job" in t.user_attrs[stored.WORKER] for t in ran_trials(study))
    # each job's worker saw its own GPU (SLURM's CUDA_VISIBLE_DEVICES from the fake gres)
    joins = [
        re.search(r"SLURM job \d+, GPU (\S+)\) joins study", p.read_text())
        for p in (sweep_dir / "slurm").glob("*_log.*")
    ]
    assert sorted(m.group(1) for m in joins if m) == ["0", "1"]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("hydra.sweeper.n_jobs=0", "`hydra.sweeper.n_jobs`=0 is invalid"),
        (
            "hydra.sweeper.storage=postgresql+psycopg://bob@127.0.0.1:9/db",
            "Cannot open the study storage hydra.sweeper.storage="
            "postgresql+psycopg://bob@127.0.0.1:9/db",
        ),
    ],
)
def test_bad_sweeper_settings_stop_before_any_trial(
    fashion_dir: Path, tmp_path: Path, isolated_env: dict[str, str], override: str, message: str
) -> None:
    result = sweep(fashion_dir, tmp_path, isolated_env, *MLP, override, timeout=120)
    assert result.returncode == 1
    assert message in result.stderr and "Traceback" not in result.stderr
    assert "pw@" not in result.stderr + result.stdout
    assert not list((tmp_path / "sweeps").glob("*/trial_*"))
