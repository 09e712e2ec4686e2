"""Stopping rules (timeout, patience, target) and a trial's time limits, on real studies:
the worker loop with trial runs replaced by their outcomes, and a real Lightning fit."""

from __future__ import annotations

import signal
import time
from datetime import datetime, timedelta
from pathlib import Path

import optuna
import pytest
import pytorch_lightning as pl
import torch
import yaml
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

from sweeplab.errors import ConfigError
from sweeplab.sweep import queries, stopping
from sweeplab.sweep import study as stored
from sweeplab.sweep.limits import TrialLimits, TrialTimedOut
from sweeplab.sweep.settings import SweepSettings
from sweeplab.sweep.stopping import StoppingRules
from sweeplab.sweep.worker import Budget
from tests.conftest import load_study, readme_commands, sweep
from tests.test_roles import _open
from tests.test_worker import Launcher, worker

X = {"x": FloatDistribution(0.0, 1.0)}


def finished(value: float, seconds: float = 10.0, epochs: int = 2) -> optuna.trial.FrozenTrial:
    """A complete trial that took ``seconds`` for ``epochs`` epochs."""
    trial = optuna.trial.create_trial(
        params={"x": 0.5},
        distributions=X,
        value=value,
        intermediate_values={step: value for step in range(epochs)},
    )
    trial.datetime_complete = datetime.now()
    trial.datetime_start = trial.datetime_complete - timedelta(seconds=seconds)
    return trial


def study_of(*values: float, direction: str = "minimize") -> optuna.Study:
    study = optuna.create_study(direction=direction)
    study.add_trials([finished(v) for v in values])
    return study


def test_target_stops_once_a_trial_reaches_it_in_the_study_s_direction() -> None:
    assert StoppingRules(target=0.2).reason(study_of(0.5, 0.3), None) is None
    reason = StoppingRules(target=0.2).reason(study_of(0.5, 0.15), None)
    assert reason is not None and "trial 1 reached 0.15" in reason and "target=0.2" in reason
    maximised = study_of(0.8, 0.95, direction="maximize")
    assert StoppingRules(target=0.9).reason(maximised, None) is not None
    assert StoppingRules(target=0.99).reason(maximised, None) is None


def test_patience_counts_finished_trials_since_the_best() -> None:
    rules = StoppingRules(patience=3)
    assert rules.reason(study_of(0.5, 0.2, 0.3, 0.4), None) is None  # 2 since the best
    reason = rules.reason(study_of(0.5, 0.2, 0.3, 0.4, 0.6), None)
    assert reason is not None and "3 finished trials since the best one (trial 1)" in reason


def test_the_time_budget_starts_no_trial_it_could_not_finish() -> None:
    study = study_of(0.5, 0.4)  # each 10 s for 2 epochs: 5 s per epoch
    rules = StoppingRules(timeout=60)
    stopping.start_clock(study, 60, time.time() - 30)  # 30 s left
    assert rules.reason(study, max_epochs=4) is None  # a 20 s trial fits
    reason = rules.reason(study, max_epochs=8)  # a 40 s trial does not
    assert reason is not None and "timeout=60 s" in reason and "predicted 40 s" in reason
    stopping.start_clock(study, 60, time.time() - 61)
    assert rules.reason(study, max_epochs=None) is not None  # over: stop, prediction or not
    stopping.start_clock(study, None, time.time())  # a new command without a budget
    assert rules.reason(study, max_epochs=8) is None
    assert queries.deadline(study) is None and queries.stopped_by(study) is None


@pytest.mark.usefixtures("data_in_env")
@pytest.mark.parametrize("command", readme_commands("### Budgets and stopping rules"))
def test_the_readme_s_stopping_rules_open_their_sweep(tmp_path: Path, command: list[str]) -> None:
    opened = _open(tmp_path, *command, check_values=False)
    limits = ("timeout", "trial_timeout", "patience", "target")
    given = {
        key.removeprefix("hydra.sweeper."): float(value)
        for key, value in (o.split("=", 1) for o in command)
        if key.removeprefix("hydra.sweeper.") in limits
    }
    assert given  # each command shows a limit
    assert {key: getattr(opened.settings, key) for key in given} == given
    rules = opened.budget.rules  # what every worker checks
    assert (rules.timeout, rules.patience, rules.target) == tuple(
        getattr(opened.settings, key) for key in ("timeout", "patience", "target")
    )


def test_patience_and_target_are_refused_for_several_objectives() -> None:
    with pytest.raises(ConfigError, match="compare a trial's one value.*2 objectives"):
        StoppingRules(patience=3).check(["maximize", "minimize"])
    StoppingRules(timeout=10).check(["maximize", "minimize"])


@pytest.mark.parametrize("key", ["timeout", "trial_timeout", "patience"])
def test_a_limit_must_be_positive(key: str) -> None:
    with pytest.raises(ConfigError, match=f"hydra.sweeper.{key}`=0 is invalid"):
        SweepSettings.from_kwargs(
            {"direction": "min", "storage": "sqlite:///s.db", "study_name": "s", key: 0}
        )


def test_the_worker_stops_at_its_patience_and_records_why(tmp_path: Path) -> None:
    values = iter([0.5, 0.2, 0.3, 0.4, 0.6, 0.1])
    launch = Launcher(lambda overrides: next(values))
    w = worker(tmp_path, launch, Budget(n_trials=6, rules=StoppingRules(patience=2)))
    w.run()
    assert [t.value for t in w.study.trials] == [0.5, 0.2, 0.3, 0.4]
    assert "2 finished trials since the best one (trial 1)" in queries.stopped_by(w.study)


def test_the_worker_records_n_trials_as_the_reason_it_stopped(tmp_path: Path) -> None:
    w = worker(tmp_path, Launcher(), Budget(n_trials=2))
    w.run()
    assert queries.stopped_by(w.study) == "2 of n_trials=2 finished"


def test_the_worker_starts_nothing_past_the_time_budget(tmp_path: Path) -> None:
    launch = Launcher()
    w = worker(tmp_path, launch, Budget(n_trials=5, rules=StoppingRules(timeout=1)))
    stopping.start_clock(w.study, 1, time.time() - 2)
    w.run()
    assert launch.batches == [] and "timeout=1 s" in queries.stopped_by(w.study)


class _Slow(pl.LightningModule):
    """A linear model whose training steps take ``step_s`` seconds."""

    def __init__(self, step_s: float) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)
        self.step_s = step_s

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        time.sleep(self.step_s)
        return self.layer(batch[0]).pow(2).mean()

    def validation_step(self, batch: list[torch.Tensor], batch_idx: int) -> None:
        self.log("val/loss", self.layer(batch[0]).pow(2).mean())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _fit(limits: TrialLimits, step_s: float, max_epochs: int) -> pl.Trainer:
    data = torch.utils.data.TensorDataset(torch.randn(8, 2))
    loader = torch.utils.data.DataLoader(data, batch_size=4)
    trainer = pl.Trainer(
        max_epochs=max_epochs,
        callbacks=[limits],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(_Slow(step_s), loader, loader)
    return trainer


def test_a_trial_stops_before_an_epoch_that_would_end_past_the_deadline() -> None:
    study = optuna.create_study()
    trial = study.ask()
    # epochs of about 0.2 s against a budget that ends 1 s from now
    deadline = time.time() + 1.0
    with pytest.raises(optuna.TrialPruned, match=r"stopped after \d of 10 epochs") as stop:
        _fit(TrialLimits(lambda: trial, deadline=deadline), step_s=0.1, max_epochs=10)
    assert time.time() < deadline + 0.5  # it did not train on to the end
    assert str(stop.value) in study.trials[0].user_attrs[stored.ENDED_BY]


def test_a_trial_that_finishes_within_the_budget_is_left_alone() -> None:
    trainer = _fit(TrialLimits(lambda: None, deadline=time.time() + 60), 0.0, max_epochs=3)
    assert trainer.current_epoch == 3


def test_a_trial_past_its_time_limit_fails_wherever_it_is_and_the_alarm_is_cleared() -> None:
    started = time.time()
    with pytest.raises(TrialTimedOut, match=r"trial_timeout=0.3 s"):
        _fit(TrialLimits(lambda: None, timeout_s=0.3), step_s=0.2, max_epochs=50)
    assert time.time() - started < 5
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    assert signal.getsignal(signal.SIGALRM) in (signal.SIG_DFL, None)


MLP = ("hparams_search=mlp_optuna", "logger=none", "trainer.max_epochs=200")


@pytest.mark.slow  # a sweep command
def test_a_sweep_ends_within_its_time_budget_with_the_running_trial_stopped_at_an_epoch(
    fashion_dir: Path, tmp_path: Path, isolated_env: dict[str, str]
) -> None:
    result = sweep(
        fashion_dir,
        tmp_path,
        isolated_env,
        *MLP,
        "hydra.sweeper.n_trials=100",
        "hydra.sweeper.timeout=8",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    sweep_dir = tmp_path / "sweeps" / "mlp_optuna"
    study = load_study(sweep_dir)
    # 200 epochs do not fit in 8 s: the first trial is stopped before the epoch that would
    # end past the budget, and no other starts
    [trial] = study.trials
    assert trial.state == TrialState.PRUNED and 1 <= queries.epochs_run(trial) < 200
    assert "time budget" in trial.user_attrs[stored.ENDED_BY]
    started = queries.deadline(study) - 8
    epoch_s = queries.duration_s(trial) / queries.epochs_run(trial)
    assert trial.datetime_complete.timestamp() - started <= 8 + epoch_s + 1.0
    results = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    assert "hydra.sweeper.timeout=8 s" in results["stopped_by"]
    assert "Stopped: the time budget" in (sweep_dir / "report.md").read_text()


@pytest.mark.slow  # a sweep command
def test_a_trial_past_its_time_limit_is_failed_with_the_reason(
    fashion_dir: Path, tmp_path: Path, isolated_env: dict[str, str]
) -> None:
    result = sweep(
        fashion_dir,
        tmp_path,
        isolated_env,
        *MLP,
        "hydra.sweeper.n_trials=1",
        "hydra.sweeper.trial_timeout=4",
        "hydra.sweeper.max_failure_rate=0",
        stops_after_work=True,
    )
    assert result.returncode == 1
    assert "ran past hydra.sweeper.trial_timeout=4 s" in result.stderr
    [trial] = load_study(tmp_path / "sweeps" / "mlp_optuna").trials
    assert trial.state == TrialState.FAIL
    assert queries.error_of(trial).startswith("TrialTimedOut: the trial ran past")
