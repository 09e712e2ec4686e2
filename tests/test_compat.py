"""The one private Optuna detail sweeplab uses (sweep/compat.py): fails loudly if it changes."""

from __future__ import annotations

from pathlib import Path

import optuna

from sweeplab.sweep.compat import trial_by_number, trial_id


def test_trial_ids_reach_the_same_trial_from_a_live_or_frozen_trial(tmp_path: Path) -> None:
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'study.db'}")
    first, second = study.ask(), study.ask()
    frozen = study.get_trials(deepcopy=False)
    assert [trial_id(first), trial_id(second)] == [trial_id(t) for t in frozen]
    assert trial_id(first) != trial_id(second)

    # a handle rebuilt from the number writes to that very trial (as the pruning callback does)
    handle = trial_by_number(study, second.number)
    handle.report(0.5, step=0)
    assert study.trials[second.number].intermediate_values == {0: 0.5}
    assert study.trials[first.number].intermediate_values == {}
