from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
import torch

from sweeplab.sweep.context import TrialContext
from sweeplab.sweep.pruning import OptunaPruning


def _trainer(epoch: int, value: float, max_epochs: int = 10) -> SimpleNamespace:
    return SimpleNamespace(
        sanity_checking=False,
        current_epoch=epoch,
        max_epochs=max_epochs,
        callback_metrics={"val/loss": torch.tensor(value)},
    )


def _study_with_two_good_trials(storage: str) -> optuna.Study:
    pruner = optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0)
    study = optuna.create_study(study_name="s", storage=storage, pruner=pruner)
    for final in (0.3, 0.4):
        trial = study.ask()
        for epoch in range(3):
            trial.report(final + 0.1 * (2 - epoch), epoch)
        study.tell(trial, final)
    return study


def test_reports_to_its_trial_and_prunes(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    bad = _study_with_two_good_trials(storage).ask()
    callback = OptunaPruning(bad, "val/loss")
    callback.on_validation_end(_trainer(0, 2.0, max_epochs=1), None)  # last epoch: complete
    with pytest.raises(optuna.TrialPruned, match=f"Trial {bad.number} pruned after epoch 1"):
        callback.on_validation_end(_trainer(0, 2.0), None)
    stored = optuna.load_study(study_name="s", storage=storage).trials[bad.number]
    assert stored.intermediate_values == {0: 2.0}  # the report reached the storage


def test_a_trial_in_another_process_reopens_it_with_the_sweeps_pruner(tmp_path: Path) -> None:
    """No live trial in this process: the context reopens the study and rebuilds the pruner."""
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    bad = _study_with_two_good_trials(storage).ask()
    pruner = {"_target_": "optuna.pruners.MedianPruner", "n_startup_trials": 2}
    trial = TrialContext("s", bad.number, storage, pruner).trial()
    assert trial.number == bad.number and isinstance(
        trial.study.pruner, optuna.pruners.MedianPruner
    )
    with pytest.raises(optuna.TrialPruned):
        OptunaPruning(trial, "val/loss").on_validation_end(_trainer(1, 2.0), None)
    unpruned = TrialContext("s", bad.number, storage, None).trial()
    assert isinstance(unpruned.study.pruner, optuna.pruners.NopPruner)


def test_good_trial_keeps_running(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    trial = _study_with_two_good_trials(storage).ask()
    callback = OptunaPruning(trial, "val/loss")
    for epoch in range(3):
        callback.on_validation_end(_trainer(epoch, 0.1 - epoch * 0.01), None)
    reloaded = optuna.load_study(study_name="s", storage=storage).trials[trial.number]
    assert len(reloaded.intermediate_values) == 3


def test_a_multi_objective_trial_counts_epochs_instead() -> None:
    study = optuna.create_study(directions=["maximize", "minimize"])
    trial = study.ask()
    callback = OptunaPruning(trial, "val/loss")
    for epoch in range(2):
        callback.on_validation_end(_trainer(epoch, 1.0), None)
    [frozen] = study.trials
    assert frozen.intermediate_values == {} and frozen.user_attrs["epochs"] == 2
