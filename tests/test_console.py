"""What a person sees: a run and a sweep, as a user runs them in a pipe, stay short and true."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from optuna.trial import FrozenTrial, TrialState, create_trial

from sweeplab.sweep import study as stored
from sweeplab.sweep.progress import format_number, time_left
from tests.conftest import run_entry, sweep

NOISE = ("srun", "LeafSpec", "litlogger", "anonymous setting", "Traceback", "Error executing job")


def _paths_are_whole(output: str, root: Path) -> None:
    """Every path under ``root`` that the output names exists: none is cut by a line wrap."""
    named = re.findall(rf"{re.escape(str(root))}[^\s;,)'\"]*", output)
    assert named, output
    for path in named:
        assert Path(path.rstrip(".:")).exists(), f"{path} is not a whole path:\n{output}"


@pytest.mark.slow  # starts processes
def test_a_run_prints_its_results_in_under_30_lines(
    fashion_dir: Path, tmp_path: Path, isolated_env: dict[str, str]
) -> None:
    result = run_entry(
        "train.py",
        f"data.data_dir={fashion_dir}",
        "data.val_size=100",
        "trainer.max_epochs=1",
        env=isolated_env,
        log_dir=tmp_path,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert len(output.splitlines()) <= 30, output
    assert not [n for n in NOISE if n in output], output
    assert re.search(r"│ model/params +│ +\d{1,3}(,\d{3})+ │", output), output
    _paths_are_whole(output, tmp_path)
    [log] = tmp_path.glob("runs/mlp/*/train.log")
    assert "GPU available" in log.read_text()  # Lightning's lines are kept in the run's log


@pytest.mark.slow  # starts processes
def test_a_sweep_prints_one_line_per_trial_and_pruning_is_no_error(
    fashion_dir: Path, tmp_path: Path, isolated_env: dict[str, str]
) -> None:
    n_trials = 3
    result = sweep(
        fashion_dir,
        tmp_path,
        isolated_env,
        "hparams_search=mlp_optuna",
        "hydra/sweeper/pruner=median",
        "hydra.sweeper.pruner.n_startup_trials=2",
        "hydra.sweeper.pruner.n_warmup_steps=0",
        "model/optimizer=adam",
        "model.optimizer.lr=choice(0.00001,0.01)",
        "hydra/sweeper/sampler=random",
        "hydra.sweeper.sampler.seed=3",  # trial 2 draws the slow rate and is pruned
        f"hydra.sweeper.n_trials={n_trials}",
        "trainer.max_epochs=2",
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Trial 2 pruned: value" in output, output
    assert len(output.splitlines()) <= n_trials + 10, output
    assert [line for line in output.splitlines() if "Trial " in line][-1].count("|") == 4
    assert not [n for n in NOISE if n in output], output
    assert "pruner MedianPruner" in output
    _paths_are_whole(output, tmp_path)

    unpruned = sweep(
        fashion_dir, tmp_path, isolated_env, "hparams_search=mlp_optuna", "name=plain",
        "hydra.sweeper.n_trials=1", "trainer.max_epochs=1", "logger=none",
    )  # fmt: skip
    plain = unpruned.stdout + unpruned.stderr
    assert unpruned.returncode == 0, plain
    assert "pruner none, 1 worker(s)" in plain, plain


def test_counts_print_as_integers() -> None:
    assert format_number(278260.0) == "278,260"
    assert format_number(1.0) == "1.0000" and format_number(0.91234) == "0.9123"
    assert format_number(1.5e6, ".4g") == "1,500,000" and format_number(1e-05, ".4g") == "1e-05"


def _trial(
    start: datetime, seconds: float | None, state: TrialState, **attrs: object
) -> FrozenTrial:
    trial = create_trial(
        state=state,
        value=0.5 if state == TrialState.COMPLETE else None,
        user_attrs=dict(attrs),
    )
    trial.datetime_start = start
    trial.datetime_complete = None if seconds is None else start + timedelta(seconds=seconds)
    return trial


def test_time_left_comes_from_finished_durations_and_running_trials() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0)
    trials = [
        _trial(now - timedelta(seconds=40), 10, TrialState.COMPLETE),
        _trial(now - timedelta(seconds=30), 10, TrialState.PRUNED),
        _trial(now - timedelta(seconds=20), 0, TrialState.COMPLETE, **{stored.DUPLICATE_OF: 0}),
        _trial(now - timedelta(seconds=4), None, TrialState.RUNNING),
    ]
    # 6 trials wanted, 3 finished, 1 running: 2 to start at the mean of 10 s (the reused
    # repeat does not count), 6 s left of the running one, one at a time so far
    assert time_left(trials, n_trials=6, now=now) == pytest.approx(26.0)
    assert time_left(trials[:3], n_trials=3, now=now) == 0.0
    assert time_left(trials[3:], n_trials=3, now=now) is None  # nothing trained yet


def test_a_pruned_job_reads_without_hydras_error_line(capsys: pytest.CaptureFixture[str]) -> None:
    import optuna
    from hydra.core.utils import JobReturn, JobStatus

    from sweeplab.sweep.sweeper import _pruned_quietly

    pruned = JobReturn(overrides=["a=1"], status=JobStatus.FAILED)
    pruned.return_value = optuna.TrialPruned("epoch 1")
    failed = JobReturn(overrides=["a=2"], status=JobStatus.FAILED)
    failed.return_value = ValueError("boom")
    quiet_pruned, kept = _pruned_quietly(pruned), _pruned_quietly(failed)
    with pytest.raises(optuna.TrialPruned, match="epoch 1"):
        _ = quiet_pruned.return_value
    assert capsys.readouterr().err == ""
    with pytest.raises(ValueError, match="boom"):  # a real error keeps Hydra's line
        _ = kept.return_value
    assert "Error executing job with overrides: ['a=2']" in capsys.readouterr().err
