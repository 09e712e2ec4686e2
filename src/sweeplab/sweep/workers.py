"""Starting several workers on one study: local processes, or SLURM jobs through submitit.

A worker is the sweep command itself, run again with ``SWEEPLAB_WORKER=<index>``: it joins the
study and runs the worker loop (``sweep/worker.py``). This process only starts the workers,
shares out GPUs and CPU threads, prints progress from the storage and waits for the end.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import BaseStorage
from optuna.trial import TrialState

from sweeplab import process, signals
from sweeplab.errors import ConfigError, SweeplabError
from sweeplab.sweep import study as stored
from sweeplab.sweep.leases import fail_and_requeue
from sweeplab.sweep.settings import Slurm
from sweeplab.sweep.slurm_job import WorkerJob
from sweeplab.sweep.worker import worker_name

__all__ = [
    "WORKER_ENV",
    "WorkersFailed",
    "describe_exit",
    "local_environments",
    "requeue_interrupted",
    "run_local",
    "run_slurm",
    "stop_workers",
    "visible_gpus",
    "worker_command",
    "worker_index",
    "worker_log",
]

log = logging.getLogger(__name__)

WORKER_ENV = "SWEEPLAB_WORKER"  # set in a worker process: its index among the sweep's workers


def worker_index() -> int | None:
    """This process's index when a sweep started it as one of its workers (the one place
    that reads ``SWEEPLAB_WORKER``)."""
    value = os.environ.get(WORKER_ENV)
    return int(value) if value else None


def worker_command(sweep_dir: Path) -> list[str]:
    """The sweep's own command line, pinned to this sweep's directory (which may hold a
    timestamp that a later process would resolve differently)."""
    return [sys.executable, *sys.argv, f"hydra.sweep.dir={sweep_dir}"]


def visible_gpus() -> list[str]:
    """The GPU ids this process may use: ``CUDA_VISIBLE_DEVICES`` if set, else every GPU."""
    if (visible := os.environ.get("CUDA_VISIBLE_DEVICES")) is not None:
        return [g for g in visible.split(",") if g.strip() and g.strip() != "-1"]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


def local_environments(workers: int, workers_per_gpu: int) -> list[dict[str, str]]:
    """Each local worker's environment: its own GPU (``workers_per_gpu`` workers share one;
    more workers than that, as ``force_workers`` allows, take the GPUs again in turn), or on a
    machine without GPUs its share of the CPU cores as torch threads. How many workers a
    machine takes is the settings' check (``SweepSettings``)."""
    gpus = visible_gpus()
    threads = max(1, (os.cpu_count() or 1) // workers)
    environments = []
    for k in range(workers):
        env = {**os.environ, WORKER_ENV: str(k)}
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = gpus[(k // workers_per_gpu) % len(gpus)]
        env.update(process.thread_environment(threads))
        environments.append(env)
    return environments


def run_local(
    command: list[str],
    environments: list[dict[str, str]],
    log_dir: Path,
    watch: Callable[[], Any],
    poll_s: float = 2.0,
    stop_timeout_s: float = 30.0,
) -> list[int]:
    """Run one worker process per environment, calling ``watch`` while they run; return their
    exit codes. A SIGINT (Ctrl-C) or SIGTERM of this process is passed on to the workers,
    which requeue their running trials for the resume (see :func:`stop_workers`)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for k, env in enumerate(environments):
            with worker_log(log_dir, k).open("ab") as out:
                processes.append(
                    subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
                )
        log.info("Started %d local workers; their logs are in %s", len(processes), log_dir)
        while any(p.poll() is None for p in processes):
            watch()
            time.sleep(poll_s)
    except BaseException as e:
        stop = signals.as_stopped(e)
        stop_workers(processes, stop.signum if stop else signal.SIGTERM, stop_timeout_s)
        raise
    watch()
    return [p.returncode for p in processes]


def stop_workers(processes: list[subprocess.Popen[bytes]], signum: int, timeout_s: float) -> None:
    """Send ``signum`` to the running workers, give them ``timeout_s`` in all to requeue
    their trials and exit, then kill the rest (the heartbeat retries a killed worker's trial
    once the resumed sweep sees it silent)."""
    for p in processes:
        if p.poll() is None:
            p.send_signal(signum)
    deadline = time.monotonic() + timeout_s
    for p in processes:
        try:
            p.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def requeue_interrupted(study: optuna.Study, storage: BaseStorage) -> None:
    """Fail the trials this process was running when a signal stopped it, and queue each
    again as Optuna's heartbeat retry does (a WAITING copy, ``retry_of`` in the reports), so
    that the resumed sweep re-runs their parameters at once. Failing them here, not leaving
    them to the heartbeat, means that no stale check queues a second copy, and they carry no
    error of their own: a stop does not count towards ``max_failure_rate``."""
    me = worker_name()
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    # Another worker's trial, here or on another machine, runs on.
    mine = [(t, "stopped by a signal") for t in running if t.user_attrs.get(stored.WORKER) == me]
    fail_and_requeue(study, storage, mine, max_retry=None)


def worker_log(log_dir: Path, index: int) -> Path:
    """Local worker ``index``'s log, named by this host and process: two sweep commands that
    share a sweep directory (on one host or a shared filesystem) never write to one file."""
    return log_dir / f"worker_{index}_{socket.gethostname()}_{os.getpid()}.log"


def describe_exit(index: int, code: int, log_dir: Path) -> str:
    """Why local worker ``index`` stopped: its own error paragraph, or where its log is (in
    ``log_dir``, named by :func:`worker_log`)."""
    log_path = worker_log(log_dir, index)
    errors = [
        line
        for line in log_path.read_text(errors="replace").splitlines()
        if line.startswith("Error: ")
    ]
    reason = errors[-1] if errors else f"see {log_path}"
    return f"Worker {index} exited with status {code}: {reason}"


def run_slurm(
    command: list[str],
    workers: int,
    slurm: Slurm,
    folder: Path,
    job_name: str,
    watch: Callable[[], Any],
    poll_s: float = 5.0,
) -> list[str]:
    """Submit ``workers`` SLURM jobs through submitit, call ``watch`` until they end; return
    one error text per failed job. Ctrl-C cancels the jobs."""
    try:
        import submitit
    except ModuleNotFoundError:
        raise ConfigError(
            "hydra/sweeper/cluster=slurm needs submitit: `pip install submitit`."
        ) from None
    executor = submitit.AutoExecutor(
        folder=folder, cluster="slurm", slurm_max_num_timeout=slurm.max_num_timeout
    )
    parameters: dict[str, Any] = dict(
        name=job_name,
        gpus_per_node=slurm.gpus_per_worker,
        cpus_per_task=slurm.cpus_per_worker,
        mem_gb=slurm.mem_gb,
        timeout_min=slurm.timeout_min,
        slurm_signal_delay_s=slurm.signal_delay_s,
        slurm_additional_parameters=dict(slurm.additional_parameters),
    )
    if slurm.partition:
        parameters["slurm_partition"] = slurm.partition
    executor.update_parameters(**parameters)
    try:
        jobs = [
            executor.submit(
                WorkerJob(),
                command,
                {WORKER_ENV: str(k), **process.thread_environment(slurm.cpus_per_worker)},
            )
            for k in range(workers)
        ]
    except Exception as e:  # sbatch refused: no SLURM here, an unknown partition, ...
        raise ConfigError(
            f"SLURM refused the workers' jobs: {str(e).strip()}. Check "
            "hydra.sweeper.cluster.partition and the resources asked for (sinfo shows what "
            "the cluster has)."
        ) from None
    log.info("Submitted %d SLURM jobs: %s (logs in %s)", workers, [j.job_id for j in jobs], folder)
    try:
        while not all(job.done() for job in jobs):
            watch()
            time.sleep(poll_s)
    except BaseException:
        for job in jobs:
            job.cancel(check=False)
        raise
    watch()
    errors = []
    for job in jobs:
        if (exception := job.exception()) is not None:
            errors.append(f"SLURM job {job.job_id}: {str(exception).strip()[-2000:]}")
    return errors


class WorkersFailed(SweeplabError):
    """The workers ended before the study reached its n_trials."""
