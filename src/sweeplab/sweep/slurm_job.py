"""A sweep worker as the function of a SLURM job (submitted through submitit), which SLURM
may stop and run again before the sweep ends: a preemption that requeues, `scontrol requeue`,
a node failure.

SLURM then sends SIGTERM to every process of the job: the worker queues its running trial
again with its ``last.ckpt`` (as on Ctrl-C) and exits. The job function then waits for SLURM
to end it rather than return: a returned job leaves submitit's result file, which the sweep
command would take for the job's end, while SLURM is about to run the job again.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

__all__ = ["WorkerJob"]

SLURM_KILL_WAIT_S = 600  # longer than any SLURM KillWait (30 s by default)
STOPPED = (128 + signal.SIGTERM, -signal.SIGTERM)  # the worker's status after SIGTERM


class WorkerJob:
    """``WorkerJob()(command, env_updates)`` runs the worker command with SLURM's own
    environment (its GPU included) plus ``env_updates``."""

    def __call__(self, command: list[str], env_updates: dict[str, str]) -> None:
        status = subprocess.run(command, env={**os.environ, **env_updates}, check=False)
        if status.returncode in STOPPED:  # SLURM ends this job next (a requeue, or scancel)
            time.sleep(SLURM_KILL_WAIT_S)
        status.check_returncode()
