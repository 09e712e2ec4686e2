"""A sweep worker as the function of a SLURM job (submitted through submitit), which SLURM
may stop and run again before the sweep ends.

Two ways in, one way out for the worker's running trial: it is queued again with its
``last.ckpt`` (as on Ctrl-C), and the worker run by the job's next start goes on with it.

- **submitit's signal** (``SIGUSR2`` by default, ``signal_delay_s`` before the time limit, or
  sent by a preemption): submitit calls :meth:`WorkerJob.checkpoint`, which stops the worker as
  SIGTERM would, and then requeues the job itself (``scontrol requeue``), at most
  ``max_num_timeout`` times for a time limit and always for a preemption. The worker's own
  process ignores that signal: the job decides.
- **SIGTERM from SLURM** (a preemption that requeues, ``scontrol requeue``, a node failure):
  SLURM signals every process of the job; the worker stops, and the job function then waits
  for SLURM to end it rather than return, since a returned job leaves submitit's result file,
  which the sweep command would take for the job's end while SLURM is about to run it again.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from submitit.helpers import DelayedSubmission

__all__ = ["WorkerJob"]

SLURM_KILL_WAIT_S = 600  # longer than any SLURM KillWait (30 s by default)
STOPPED = (128 + signal.SIGTERM, -signal.SIGTERM)  # the worker's status after SIGTERM
STOP_WAIT_S = 60.0  # a stopped worker writes its requeue and exits within this (then killed)
POLL_S = 0.5


class WorkerJob:
    """``WorkerJob()(command, env_updates)`` runs the worker command with SLURM's own
    environment (its GPU included) plus ``env_updates``."""

    def __init__(self) -> None:
        self._worker: subprocess.Popen[bytes] | None = None

    def __getstate__(self) -> dict[str, Any]:  # submitit pickles the job; not its process
        return {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._worker = None

    def __call__(self, command: list[str], env_updates: dict[str, str]) -> None:
        submitit_signal = _submitit_signal()
        self._worker = subprocess.Popen(
            command,
            env={**os.environ, **env_updates},
            # SLURM sends submitit's signal to every process of the job: the job decides
            preexec_fn=lambda: signal.signal(submitit_signal, signal.SIG_IGN),
        )
        status = _wait(self._worker, timeout_s=None)
        if status in STOPPED:  # SLURM ends this job next (a requeue, or scancel)
            time.sleep(SLURM_KILL_WAIT_S)
        if status != 0:
            raise subprocess.CalledProcessError(status, command)

    def checkpoint(self, command: list[str], env_updates: dict[str, str]) -> DelayedSubmission:
        """Called by submitit on its preemption or time-limit signal: stop the worker (its
        trial is queued again with its last.ckpt), then let submitit requeue this same call."""
        from submitit.helpers import DelayedSubmission

        worker = self._worker
        if worker is not None and worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
            if _wait(worker, timeout_s=STOP_WAIT_S) is None:
                worker.kill()  # its trial goes back through the heartbeat instead
        return DelayedSubmission(self, command, env_updates)


def _wait(worker: subprocess.Popen[bytes], timeout_s: float | None) -> int | None:
    """The worker's exit status, or ``None`` after ``timeout_s``. Polls rather than blocks in
    ``Popen.wait``, whose lock the signal handler's own wait could never take."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while (status := worker.poll()) is None:
        if deadline is not None and time.monotonic() > deadline:
            return None
        time.sleep(POLL_S)
    return status


def _submitit_signal() -> signal.Signals:
    """The signal submitit takes for a preemption or a coming time limit (``SIGUSR2``, or
    ``SUBMITIT_PREEMPT_SIGNAL``)."""
    from submitit import JobEnvironment

    return signal.Signals[f"SIG{JobEnvironment.USR_SIG}"]
