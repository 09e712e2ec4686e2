"""Reads of a study (sweep/queries.py), on studies built in memory with ask and tell."""

from __future__ import annotations

from datetime import timedelta

import optuna
import pytest
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from sweeplab.sweep import queries
from sweeplab.sweep import study as stored

optuna.logging.set_verbosity(optuna.logging.WARNING)
pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")


def add(
    study: optuna.Study,
    units: int,
    outcome: float | tuple[float, ...] | TrialState,
    reports: tuple[float, ...] = (),
    **user_attrs: object,
) -> optuna.Trial:
    """Ask a trial with ``units``, report ``reports`` (one per epoch), set ``user_attrs``,
    and tell it a value or a state."""
    study.enqueue_trial({"units": units})
    trial = study.ask()
    trial.suggest_int("units", 0, 500)
    for epoch, value in enumerate(reports):
        trial.report(value, epoch)
    for key, value in user_attrs.items():
        trial.set_user_attr(key, value)
    if isinstance(outcome, TrialState):
        study.tell(trial, state=outcome)
    else:
        study.tell(trial, outcome)
    return trial


def surplus(study: optuna.Study) -> optuna.Trial:
    """A surplus ask, closed unrun the way a worker closes it."""
    trial = study.ask()
    trial.set_user_attr(stored.SURPLUS, True)
    study.tell(trial, state=TrialState.FAIL)
    return trial


@pytest.fixture
def single() -> optuna.Study:
    """0 complete 0.5, 1 pruned, 2 complete 0.3, 3 failed, 4 lost worker, 5 surplus,
    6 a repeat of trial 2 whose value is reused."""
    study = optuna.create_study(study_name="single")
    study.set_user_attr(stored.BASE_OVERRIDES, ["model=mlp"])
    add(study, 100, 0.5, **{stored.OVERRIDES: ["model.net.units=100"], stored.WORKER: "a:1"})
    add(study, 200, TrialState.PRUNED, reports=(0.9,))
    add(study, 300, 0.3, **{stored.OVERRIDES: ["model.net.units=300"], stored.EPOCHS: 4})
    add(study, 400, TrialState.FAIL, **{stored.ERROR: "TrainingDiverged: boom"})
    add(study, 450, TrialState.FAIL)  # no error of its own: its worker was lost
    surplus(study)
    study.enqueue_trial({"units": 300})
    repeat = study.ask()
    repeat.suggest_int("units", 0, 500)
    assert stored.reuse_twin(study, repeat)
    return study


def test_best_trial_and_counts_of_a_single_objective_study(single: optuna.Study) -> None:
    assert not queries.is_multi_objective(single)
    assert queries.objective_names(single) == ["value"] == queries.value_columns(single)
    best = queries.best_trial(single)
    assert best is not None and best.number == 2 and best.value == 0.3
    assert queries.best_overrides(best, queries.base_overrides(single)) == [
        "model=mlp",
        "model.net.units=300",
    ]
    assert queries.count_finished(single) == 4  # 0, 1, 2 and the reused repeat 6
    assert queries.count(single, TrialState.FAIL) == 3  # the surplus ask is a FAIL too
    assert queries.count(single, TrialState.RUNNING, TrialState.WAITING) == 0
    assert [t.number for t in queries.complete_trials(single)] == [0, 2, 6]
    assert queries.trial(single, 3).number == 3


def test_best_trial_is_none_before_a_complete_trial_and_with_several_objectives() -> None:
    study = optuna.create_study()
    assert queries.best_trial(study) is None
    add(study, 100, TrialState.PRUNED)
    add(study, 200, TrialState.FAIL)
    assert queries.best_trial(study) is None
    multi = optuna.create_study(directions=["maximize", "minimize"])
    add(multi, 100, (0.9, 1e5))
    assert queries.best_trial(multi) is None


def test_surplus_asks_are_no_trials_to_report(single: optuna.Study) -> None:
    reported = queries.reported_trials(single)
    assert [t.number for t in reported] == [0, 1, 2, 3, 4, 6]
    assert queries.state_counts(reported) == {
        "running": 0,
        "complete": 3,
        "pruned": 1,
        "fail": 2,
        "waiting": 0,
    }
    surplus_trial = single.trials[5]
    assert queries.error_of(surplus_trial) is None and not queries.ran(surplus_trial)


def test_errors_failures_and_trials_that_ran(single: optuna.Study) -> None:
    trials = single.trials
    assert queries.error_of(trials[3]) == "TrainingDiverged: boom"
    assert queries.error_of(trials[4]) == queries.LOST_WORKER
    assert queries.error_of(trials[0]) is None and queries.error_of(trials[1]) is None
    # A lost worker is not the configuration's fault; failures count from a first number.
    assert [t.number for t in queries.failures_since(single, 0)] == [3]
    assert queries.failures_since(single, 4) == []
    assert [queries.ran(t) for t in trials] == [True, True, True, True, True, False, False]


def test_a_reused_repeat_is_complete_but_did_not_train(single: optuna.Study) -> None:
    repeat = single.trials[6]
    assert repeat.state == TrialState.COMPLETE and repeat.value == 0.3
    assert repeat.user_attrs[stored.DUPLICATE_OF] == 2 and not queries.ran(repeat)
    assert queries.best_trial(single).number == 2  # the first of equal values stays best
    assert queries.epochs_run(repeat) == 0
    assert queries.epochs_run(single.trials[1]) == 1  # reported values
    assert queries.epochs_run(single.trials[2]) == 4  # the count kept for it
    assert queries.epochs_total(queries.reported_trials(single)) == 5


def test_trial_rows(single: optuna.Study) -> None:
    header, rows = queries.trial_rows(queries.reported_trials(single), ["value"])
    assert header == [
        "number",
        "state",
        "value",
        "epochs",
        "duration_s",
        "units",
        "error",
        "duplicate_of",
        "retry_of",
        "worker",
    ]
    by_number = {row[0]: dict(zip(header, row, strict=True)) for row in rows}
    assert list(by_number) == [0, 1, 2, 3, 4, 6]
    assert by_number[0]["value"] == 0.5 and by_number[0]["worker"] == "a:1"
    assert by_number[0]["units"] == 100 and isinstance(by_number[0]["duration_s"], float)
    assert by_number[1]["state"] == "PRUNED" and by_number[1]["value"] == 0.9  # last reported
    assert by_number[3]["value"] is None
    assert by_number[3]["error"] == "TrainingDiverged: boom"
    assert by_number[4]["error"] == queries.LOST_WORKER
    assert by_number[6]["duplicate_of"] == 2 and by_number[6]["epochs"] == 0
    assert all(row["retry_of"] == "" for row in by_number.values())


def test_an_inactive_parameter_is_an_empty_cell() -> None:
    study = optuna.create_study()
    first = study.ask()
    first.suggest_int("layers", 1, 2)
    study.tell(first, 1.0)
    second = study.ask()
    second.suggest_int("units", 1, 2)
    study.tell(second, 2.0)
    assert queries.param_names(study.trials) == ["layers", "units"]
    header, rows = queries.trial_rows(study.trials, ["value"])
    column = header.index("units")
    assert rows[0][column] == "" and rows[1][column] in (1, 2)


def test_a_heartbeat_retry_names_the_trial_it_re_runs() -> None:
    study = optuna.create_study()
    lost = add(study, 100, TrialState.FAIL)
    RetryHeartbeatStaleTrialCallback()(study, study.trials[lost.number])  # as Optuna does
    retry = study.ask()
    assert retry.params == {"units": 100}
    assert queries.retry_of(queries.trial(study, retry.number)) == lost.number
    assert queries.retry_of(study.trials[lost.number]) is None
    header, rows = queries.trial_rows(study.trials, ["value"])
    assert rows[1][header.index("retry_of")] == lost.number


def test_the_pareto_set_of_a_multi_objective_study() -> None:
    study = optuna.create_study(directions=["maximize", "minimize"])
    assert queries.objective_names(study) == ["value_0", "value_1"]
    study.set_metric_names(["val/acc_best", "model/params"])
    # (accuracy, parameters): 0, 2 and 3 are non-dominated, 1 is dominated by 0
    for units, values in ((50, (0.90, 1e5)), (75, (0.89, 2e5)), (100, (0.92, 3e5))):
        add(study, units, values)
    add(study, 25, (0.80, 5e4))
    add(study, 60, TrialState.PRUNED)
    surplus(study)
    assert queries.is_multi_objective(study)
    assert queries.objective_names(study) == ["val/acc_best", "model/params"]
    assert queries.value_columns(study) == ["val/acc_best", "model/params"]
    assert [t.number for t in queries.pareto_trials(study)] == [0, 2, 3]
    header, rows = queries.trial_rows(queries.reported_trials(study), queries.value_columns(study))
    assert header[:4] == ["number", "state", "val/acc_best", "model/params"]
    assert rows[2][2:4] == [0.92, 3e5] and rows[4][2:4] == [None, None]
    assert len(rows) == 5  # not the surplus ask

    # A repeat of a Pareto trial reuses its values: Optuna lists it in the set too, marked.
    study.enqueue_trial({"units": 100})
    repeat = study.ask()
    repeat.suggest_int("units", 0, 500)
    assert stored.reuse_twin(study, repeat)
    pareto = queries.pareto_trials(study)
    assert [t.number for t in pareto] == [0, 2, 3, repeat.number]
    assert pareto[-1].user_attrs[stored.DUPLICATE_OF] == 2 and not queries.ran(pareto[-1])


def test_finished_by_counts_trials_ended_by_then(single: optuna.Study) -> None:
    finished = sorted(
        (t for t in single.trials if t.state in queries.FINISHED),
        key=lambda t: t.datetime_complete,
    )
    first = finished[0].datetime_complete
    assert queries.finished_by(single, first - timedelta(seconds=1)) == 0
    assert queries.finished_by(single, first) >= 1
    assert queries.finished_by(single, finished[-1].datetime_complete) == 4


def test_duration_of_a_trial_not_ended_is_none() -> None:
    study = optuna.create_study()
    running = study.ask()
    assert queries.duration_s(queries.trial(study, running.number)) is None


def test_progress_lines_read_the_study_through_queries(single: optuna.Study) -> None:
    from sweeplab.sweep.progress import SweepProgress

    progress = SweepProgress(single, n_trials=10)
    assert progress.poll() == []  # ended before it watched
    progress.reported.clear()
    lines = progress.poll()
    assert [line.split()[1] for line in lines] == ["0", "1", "2", "3", "4", "6"]  # no surplus
    assert "best 0.3000 (trial 2) | 3/10 finished" in lines[2]
    assert "best 0.3000 (trial 2) | 4/10 finished" in lines[-1]
    assert lines[-1].startswith("Trial 6 repeats trial 2: value 0.3000 reused |")


def test_epochs_total_counts_a_resumed_trial_s_carried_epochs_once() -> None:
    study = optuna.create_study()
    # trial 0 trained 3 epochs and died; its checkpoint held 2, so 1 was lost
    add(study, 10, TrialState.FAIL, reports=(0.9, 0.8, 0.7))
    # trial 1 went on from that checkpoint: 2 epochs carried over, 3 trained here
    resumed = {stored.RESUMED_FROM: 0, stored.EPOCHS_LOST: 1}
    add(study, 10, 0.5, reports=(0.9, 0.8, 0.7, 0.6, 0.5), **resumed)
    add(study, 20, 0.4, reports=(0.4,), **{stored.WARM_START: "elsewhere"})  # ran elsewhere
    assert queries.epochs_total(study.trials) == 3 + 3
