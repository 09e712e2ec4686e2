"""The worker loop on a real SQLite study, with trial runs replaced by their outcomes."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import optuna
import pytest
from hydra.core.utils import JobReturn, JobStatus
from optuna.trial import TrialState

from sweeplab.compat.optuna import trial_id
from sweeplab.errors import TrainingDiverged
from sweeplab.sweep import queries
from sweeplab.sweep import study as stored
from sweeplab.sweep.context import NODE, TrialContext
from sweeplab.sweep.settings import Heartbeat
from sweeplab.sweep.spaces import SearchSpace
from sweeplab.sweep.storage import open_storage
from sweeplab.sweep.worker import Budget, SweepFailed, Worker

SPACE = SearchSpace.from_overrides(["x=interval(0.0, 1.0)", "data.augment=true"])


def job(outcome: object) -> JobReturn:
    failed = isinstance(outcome, BaseException)
    return JobReturn(
        status=JobStatus.FAILED if failed else JobStatus.COMPLETED, _return_value=outcome
    )


class Launcher:
    """Records the batches it is given and answers each trial with ``outcome(overrides)``."""

    def __init__(self, outcome=lambda overrides: 0.5) -> None:
        self.outcome = outcome
        self.batches: list[list[list[str]]] = []

    def __call__(self, batch: Sequence[Sequence[str]], first: int) -> list[JobReturn]:
        self.batches.append([list(o) for o in batch])
        return [job(self.outcome(o)) for o in batch]


def worker(tmp_path: Path, launch: Launcher, budget: Budget) -> Worker:
    storage = open_storage(f"sqlite:///{tmp_path / 'study.db'}")
    study = optuna.create_study(study_name="s", storage=storage, load_if_exists=True)

    def context(number: int) -> TrialContext:
        return TrialContext("s", number, "sqlite:///study.db")

    return Worker(study, storage, SPACE, launch, budget, context, reuse_repeats=False)


def test_runs_exactly_n_trials_in_batches_of_n_jobs(tmp_path: Path) -> None:
    launch = Launcher()
    w = worker(tmp_path, launch, Budget(n_trials=3, n_jobs=2))
    w.run()
    assert [len(b) for b in launch.batches] == [2, 1]
    first = launch.batches[0][0]
    assert first[0].startswith("x=") and first[1] == "data.augment=true"
    assert first[2] == TrialContext("s", 0, "sqlite:///study.db").as_override()
    assert first[2].startswith(f"++{NODE}=")
    assert [t.state for t in w.study.trials] == [TrialState.COMPLETE] * 3
    assert w.study.trials[0].user_attrs[stored.OVERRIDES] == [first[0]]  # sampled only


def test_a_place_taken_by_another_worker_is_not_run_twice(tmp_path: Path) -> None:
    w = worker(tmp_path, Launcher(), Budget(n_trials=2))
    elsewhere = w.study.ask()  # another worker's running trial holds place 1
    w.study.tell(w.study.ask(), 0.1)  # place 2 finished
    assert w._claim(1) == []  # a third ask is over the budget: closed unrun
    surplus = w.study.trials[-1]
    assert surplus.state == TrialState.FAIL and surplus.user_attrs[stored.SURPLUS]
    assert queries.error_of(surplus) is None and not queries.ran(surplus)
    assert w.study.trials[elsewhere.number].state == TrialState.RUNNING


def test_failures_stop_the_sweep_past_the_rate_and_pruned_trials_count(tmp_path: Path) -> None:
    outcomes = iter([optuna.TrialPruned(), TrainingDiverged("loss is nan"), 0.3, float("nan")])
    launch = Launcher(lambda overrides: next(outcomes))
    w = worker(tmp_path, launch, Budget(n_trials=4, max_failure_rate=0.25))
    with pytest.raises(SweepFailed, match="2 trials failed.*objective is nan"):
        w.run()
    states = [t.state for t in w.study.trials]
    assert states == [TrialState.PRUNED, TrialState.FAIL, TrialState.COMPLETE, TrialState.FAIL]
    assert queries.error_of(w.study.trials[1]) == "TrainingDiverged: loss is nan"


def test_a_retry_of_a_run_that_kept_its_outcome_records_it_without_training(
    tmp_path: Path,
) -> None:
    """The worker died after the run kept its value, before telling it: the heartbeat fails
    the trial and queues a retry, which records the kept value instead of training again."""
    storage = open_storage(
        f"sqlite:///{tmp_path / 'study.db'}", Heartbeat(interval=1, grace_period=2)
    )
    study = optuna.create_study(study_name="s", storage=storage)
    dead = study.ask()
    dead.set_user_attr(stored.OVERRIDES, SPACE.sample(dead, None))
    stored.keep_outcome(dead, 0.25)
    storage.record_heartbeat(trial_id(dead))
    time.sleep(3)  # past the grace period
    launch = Launcher()
    w = Worker(
        study,
        storage,
        SPACE,
        launch,
        Budget(n_trials=1),
        lambda n: TrialContext("s", n, "sqlite:///study.db"),
        reuse_repeats=False,
    )
    w.run()
    assert launch.batches == []  # nothing trained
    failed, retry = study.trials
    assert failed.state == TrialState.FAIL and queries.retry_of(retry) == 0
    assert retry.state == TrialState.COMPLETE and retry.value == 0.25
    assert retry.user_attrs[stored.DUPLICATE_OF] == 0 and not queries.ran(retry)
