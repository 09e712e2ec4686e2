"""Failing the trials of dead workers where the storage has no heartbeat (Optuna's journal).

A journal cannot tell a dead worker's RUNNING trial from a live one by time alone, and a
guessed timeout would fail long trials. Every trial records its worker as ``host:pid``
(``study.WORKER``), so a worker on the same host asks the process table instead: a pid that is
gone, a zombie, or a process that started after the trial did is not that worker any more.
Trials of other hosts are failed on request, by age (``sweeplab fail-stale --older-than``).
A failed trial runs again as Optuna's heartbeat retry would (``RetryHeartbeatStaleTrialCallback``:
the retry carries ``failed_trial`` and ``retry_history``), at most ``max_retry`` times.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import re
import socket
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import BaseStorage, JournalStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages.journal import BaseJournalBackend
from optuna.trial import FrozenTrial, TrialState

from sweeplab.compat.optuna import experimental, trial_id
from sweeplab.sweep import study as stored
from sweeplab.sweep.settings import Heartbeat

__all__ = [
    "DEFAULT_MAX_RETRY",
    "Failed",
    "RetryingJournalStorage",
    "fail_and_requeue",
    "fail_stale",
]

log = logging.getLogger(__name__)

DEFAULT_MAX_RETRY = Heartbeat.max_retry  # hydra.sweeper.heartbeat.max_retry's default
# /proc's boot time has whole seconds: a process counts as started after a trial only when it
# started this much later, so the trial's own worker is never mistaken for a newcomer.
CLOCK_SLACK_S = 2.0
_WORKER = re.compile(r"(?P<host>[^\s:]+):(?P<pid>\d+)")  # worker.worker_name()'s start


class RetryingJournalStorage(JournalStorage):
    """Optuna's journal storage, plus how often a dead worker's trial runs again
    (``hydra.sweeper.heartbeat.max_retry``), which an RDB storage keeps in its heartbeat."""

    def __init__(self, backend: BaseJournalBackend, max_retry: int = DEFAULT_MAX_RETRY) -> None:
        super().__init__(backend)
        self.max_retry = max_retry


@dataclass(frozen=True)
class Failed:
    """A RUNNING trial this module failed, and why."""

    number: int
    worker: str
    reason: str
    requeued: bool  # its parameters run again (False once max_retry retries ran)

    def describe(self) -> str:
        again = "queued to run again" if self.requeued else "not queued again (max_retry)"
        return f"Trial {self.number} (worker {self.worker or '?'}) failed: {self.reason}; {again}."


def fail_stale(
    study: optuna.Study, storage: BaseStorage, older_than_s: float | None = None
) -> list[Failed]:
    """Fail the RUNNING trials of ``study`` whose worker ran on this host and is gone, and,
    given ``older_than_s``, every RUNNING trial (any host) that started longer ago than that:
    for workers on other machines, whose processes this host cannot see."""
    here = socket.gethostname()
    now = datetime.now()  # naive local time, as Optuna stores datetime_start
    stale = []
    for trial in _running(study):
        reason = _gone(trial, here)
        age = (now - trial.datetime_start).total_seconds() if trial.datetime_start else 0.0
        if reason is None and older_than_s is not None and age > older_than_s:
            reason = f"running for {age:.0f} s, more than --older-than {older_than_s:g}"
        if reason is not None:
            stale.append((trial, reason))
    return fail_and_requeue(study, storage, stale, getattr(storage, "max_retry", DEFAULT_MAX_RETRY))


def _running(study: optuna.Study) -> list[FrozenTrial]:
    return study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))


def _gone(trial: FrozenTrial, host: str) -> str | None:
    """Why ``trial``'s worker certainly no longer runs it, or ``None`` (alive, on another host,
    or not yet named: a worker names itself right after asking)."""
    match = _WORKER.match(str(trial.user_attrs.get(stored.WORKER, "")))
    if match is None or match["host"] != host:
        return None
    pid = int(match["pid"])
    started = _process_start(pid)
    if started is None:
        return f"process {pid} on {host} has exited"
    if trial.datetime_start and started > trial.datetime_start.timestamp() + CLOCK_SLACK_S:
        return f"process {pid} on {host} is a newer process than the trial"
    return None


def _process_start(pid: int) -> float | None:
    """When live process ``pid`` started (epoch seconds; 0.0 where the system does not say),
    or ``None`` if there is none. A zombie is dead: it only waits for its parent to reap it."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:  # another user's process: alive
        pass
    try:  # Linux: fields after the command name; state is field 3, starttime field 22
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    if fields[0] in ("Z", "X"):
        return None
    return _boot_time() + int(fields[19]) / os.sysconf("SC_CLK_TCK")


@cache
def _boot_time() -> float:
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    return 0.0


def fail_and_requeue(
    study: optuna.Study,
    storage: BaseStorage,
    stale: list[tuple[FrozenTrial, str]],
    max_retry: int | None,
) -> list[Failed]:
    """Fail each RUNNING trial of ``stale`` (with its reason) that no one finished meanwhile,
    and queue its parameters again at most ``max_retry`` times (``None``: always, for a trial
    stopped by the user rather than lost). The failure carries no error of its own, so it does
    not count towards ``max_failure_rate``. A trial whose run finished and kept its outcome
    before the stop is completed with it instead: nothing is trained twice."""
    failed = []
    for trial, reason in stale:
        if (values := stored.kept_outcome(trial)) is not None:
            with contextlib.suppress(UpdateFinishedTrialError):  # its worker told it after all
                storage.set_trial_state_values(trial_id(trial), TrialState.COMPLETE, values)
                log.info("Trial %d had finished: its kept value(s) are recorded.", trial.number)
            continue
        try:
            storage.set_trial_user_attr(trial_id(trial), stored.ENDED_BY, reason)
            if not storage.set_trial_state_values(trial_id(trial), TrialState.FAIL):
                continue
        except UpdateFinishedTrialError:  # its worker finished it, or another worker failed it
            continue
        worker = trial.user_attrs.get(stored.WORKER, "")
        failed.append(Failed(trial.number, worker, reason, _requeue(study, trial, max_retry)))
        log.info("%s", failed[-1].describe())
    return failed


def _requeue(study: optuna.Study, trial: FrozenTrial, max_retry: int | None) -> bool:
    """Queue ``trial``'s parameters again, as Optuna's heartbeat retry does; the retry starts
    without a worker, so nobody mistakes it for the dead one's until its worker names itself."""
    retries = len(trial.system_attrs.get("retry_history", []))
    retry = copy.deepcopy(trial)
    retry.user_attrs = {k: v for k, v in trial.user_attrs.items() if k != stored.WORKER}
    with experimental():  # since Optuna 2.8, the retry RDB heartbeats use too
        RetryHeartbeatStaleTrialCallback(max_retry=max_retry)(study, retry)
    return max_retry is None or retries < max_retry
