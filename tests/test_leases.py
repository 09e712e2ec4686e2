"""Trials of dead workers on a journal storage (no heartbeat): failed by the process table of
their host, or by age on request, and their parameters queued again like a heartbeat retry."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import FrozenTrial, TrialState

from sweeplab.sweep import leases, queries
from sweeplab.sweep import study as stored
from sweeplab.sweep.context import TrialContext
from sweeplab.sweep.settings import Heartbeat
from sweeplab.sweep.storage import open_storage
from sweeplab.sweep.worker import Budget, Worker, worker_name
from tests.conftest import ROOT
from tests.test_worker import SPACE, Launcher

HOST = socket.gethostname()
X = FloatDistribution(0.0, 1.0)
# The worker loop's own search space and trial claim, in a process of its own that then waits
# to be killed: a worker that dies mid-trial.
CLAIM = """
import sys, time, optuna
from sweeplab.sweep import study as stored
from sweeplab.sweep.storage import open_storage
from sweeplab.sweep.worker import worker_name
from tests.test_worker import SPACE
study = optuna.load_study(study_name="s", storage=open_storage(sys.argv[1]))
trial = study.ask()
trial.set_user_attr(stored.OVERRIDES, SPACE.sample(trial, None))
trial.set_user_attr(stored.WORKER, worker_name())
print(trial.number, flush=True)
time.sleep(600)
"""


def journal(tmp_path: Path, max_retry: int = 1) -> tuple[optuna.Study, Any]:
    storage = open_storage(f"journal:{tmp_path / 'study.log'}", Heartbeat(max_retry=max_retry))
    return optuna.create_study(study_name="s", storage=storage, load_if_exists=True), storage


def running(worker: str, started: datetime | None = None, **system_attrs: Any) -> FrozenTrial:
    """A RUNNING trial of ``worker``, as another process left it."""
    return FrozenTrial(
        number=0,
        state=TrialState.RUNNING,
        value=None,
        datetime_start=started or datetime.now(),
        datetime_complete=None,
        params={"x": 0.25},
        distributions={"x": X},
        user_attrs={stored.WORKER: worker},
        system_attrs=system_attrs,
        intermediate_values={},
        trial_id=0,
    )


def dead_pid() -> int:
    """A pid no process can have (Linux: above the kernel's maximum)."""
    limit = Path("/proc/sys/kernel/pid_max")
    if not limit.exists():
        pytest.skip("needs Linux's /proc")
    return int(limit.read_text()) + 1


def test_a_dead_workers_trial_on_this_host_is_failed_and_queued_once(tmp_path: Path) -> None:
    study, storage = journal(tmp_path)
    study.add_trial(running(f"{HOST}:{dead_pid()} (GPU 0)"))
    [failed] = leases.fail_stale(study, storage)
    assert failed.number == 0 and failed.requeued and "has exited" in failed.reason
    lost, retry = study.get_trials(deepcopy=False)
    assert lost.state == TrialState.FAIL and queries.failures_since(study, 0) == []  # no error
    assert retry.state == TrialState.WAITING and retry.params == lost.params
    assert queries.retry_of(retry) == 0 and stored.WORKER not in retry.user_attrs
    assert leases.fail_stale(study, storage) == []  # failed once, by one worker


def test_max_retry_bounds_the_retries(tmp_path: Path) -> None:
    study, storage = journal(tmp_path, max_retry=1)
    study.add_trial(
        running(f"{HOST}:{dead_pid()}", failed_trial=7, retry_history=[7])  # a retry already
    )
    [failed] = leases.fail_stale(study, storage)
    assert not failed.requeued and "not queued again" in failed.describe()
    assert [t.state for t in study.trials] == [TrialState.FAIL]


def test_live_workers_and_other_hosts_are_left_alone_unless_older_than(tmp_path: Path) -> None:
    study, storage = journal(tmp_path)
    study.add_trial(running(f"{HOST}:{os.getpid()}"))  # this process: alive, older than it
    study.add_trial(running("elsewhere.example:1"))  # another machine's process table
    unnamed = running("")  # asked, not yet named by its worker
    unnamed.user_attrs = {}
    study.add_trial(unnamed)
    assert leases.fail_stale(study, storage) == []
    assert leases.fail_stale(study, storage, older_than_s=3600) == []
    failed = leases.fail_stale(study, storage, older_than_s=0)
    assert [f.number for f in failed] == [0, 1, 2]
    assert all("more than --older-than 0" in f.reason for f in failed)


def test_a_pid_now_held_by_a_newer_process_is_not_the_trials_worker(tmp_path: Path) -> None:
    study, storage = journal(tmp_path)
    study.add_trial(running(f"{HOST}:{os.getpid()}", started=datetime(2000, 1, 1)))
    [failed] = leases.fail_stale(study, storage)
    assert "newer process" in failed.reason


@pytest.mark.slow
def test_a_killed_workers_trial_is_run_again_and_the_study_ends_with_n_trials(
    tmp_path: Path,
) -> None:
    """A worker process takes a trial and is killed with SIGKILL; the next worker's start
    reclaims the trial, and the study still ends with exactly n_trials complete trials
    (without the reclaim it would stop at 2 of 3, the dead trial RUNNING forever)."""
    study, storage = journal(tmp_path)
    url = f"journal:{tmp_path / 'study.log'}"
    claimer = subprocess.Popen(
        [sys.executable, "-c", CLAIM, url], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    try:
        assert claimer.stdout is not None and claimer.stdout.readline().strip() == "0"
        assert leases.fail_stale(study, storage) == []  # alive: its trial is its own
    finally:
        claimer.send_signal(signal.SIGKILL)
        claimer.wait(30)

    def context(number: int) -> TrialContext:
        return TrialContext("s", number, url)

    Worker(study, storage, SPACE, Launcher(), Budget(n_trials=3), context).run()
    trials = study.get_trials(deepcopy=False)
    assert [t.state for t in trials] == [TrialState.FAIL] + [TrialState.COMPLETE] * 3
    assert queries.count_finished(study) == 3
    assert queries.retry_of(trials[1]) == 0 and trials[1].params == trials[0].params
    assert trials[1].user_attrs[stored.WORKER] == worker_name()
