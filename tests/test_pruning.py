from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
import torch

from sweeplab.sweep.pruning import OptunaPruning, TrialPruned


def _trainer(epoch: int, value: float, max_epochs: int = 10) -> SimpleNamespace:
    return SimpleNamespace(
        sanity_checking=False,
        current_epoch=epoch,
        max_epochs=max_epochs,
        callback_metrics={"val/loss": torch.tensor(value)},
    )


def test_reports_through_storage_and_prunes(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    pruner = optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0)
    study = optuna.create_study(study_name="s", storage=storage, pruner=pruner)
    for final in (0.3, 0.4):  # two finished trials with good losses
        trial = study.ask()
        for epoch in range(3):
            trial.report(final + 0.1 * (2 - epoch), epoch)
        study.tell(trial, final)
    bad = study.ask()

    callback = OptunaPruning("s", storage, "val/loss", trial_number=bad.number, pruner=pruner)
    callback.setup(None, None, "fit")
    callback.on_validation_end(_trainer(0, 2.0, max_epochs=1), None)  # last epoch: complete
    with pytest.raises(TrialPruned, match=f"Trial {bad.number} pruned after epoch 1"):
        callback.on_validation_end(_trainer(0, 2.0), None)
    stored = optuna.load_study(study_name="s", storage=storage).trials[bad.number]
    assert stored.intermediate_values == {0: 2.0}  # the report reached the storage


def test_good_trial_keeps_running(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(study_name="s", storage=storage)
    trial = study.ask()
    callback = OptunaPruning("s", storage, "val/loss", trial_number=trial.number)
    callback.setup(None, None, "fit")
    for epoch in range(3):
        callback.on_validation_end(_trainer(epoch, 1.0 - epoch * 0.1), None)
    assert (
        len(optuna.load_study(study_name="s", storage=storage).trials[0].intermediate_values) == 3
    )


def test_outside_a_sweep_it_does_nothing() -> None:
    callback = OptunaPruning("s", "sqlite:///nowhere/x.db", "val/loss", trial_number=None)
    callback.setup(None, None, "fit")  # no storage is opened
    callback.on_validation_end(_trainer(0, 1.0), None)


def test_pruned_is_an_optuna_prune() -> None:
    assert issubclass(TrialPruned, optuna.TrialPruned) and TrialPruned.run_state == "pruned"
