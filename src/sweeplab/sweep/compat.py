"""The one private Optuna detail sweeplab relies on, kept here with a test that fails loudly
when Optuna changes it (tests/test_compat.py).

A trial's storage id: Optuna's public API identifies trials by number within a study, but its
storages (heartbeats, reporting to a trial from another process) take the id.
"""

from __future__ import annotations

import optuna
from optuna.trial import FrozenTrial


def trial_id(trial: optuna.Trial | FrozenTrial) -> int:
    """The storage id of a live or frozen trial."""
    return trial._trial_id


def trial_by_number(study: optuna.Study, number: int) -> optuna.Trial:
    """A live handle on trial ``number``, e.g. for reporting from the process that runs it."""
    [frozen] = [t for t in study.get_trials(deepcopy=False) if t.number == number]
    return optuna.Trial(study, trial_id(frozen))
