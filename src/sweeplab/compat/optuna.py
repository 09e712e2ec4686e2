"""What sweeplab needs of Optuna beyond its stable public API, with a test that fails loudly
when Optuna changes it (tests/test_compat.py).

A trial's storage id: Optuna's public API identifies trials by number within a study, but its
storages (heartbeats, reporting to a trial from another process) take the id. And the public
but experimental features sweeplab uses on purpose (heartbeats, metric names, TPE's
``group``), whose ``ExperimentalWarning`` says nothing a sweeplab user can act on.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import optuna
from optuna.trial import FrozenTrial

__all__ = ["experimental", "trial_by_number", "trial_id"]


def trial_id(trial: optuna.Trial | FrozenTrial) -> int:
    """The storage id of a live or frozen trial."""
    return trial._trial_id


def trial_by_number(study: optuna.Study, number: int) -> optuna.Trial:
    """A live handle on trial ``number``, e.g. for reporting from the process that runs it."""
    [frozen] = [t for t in study.get_trials(deepcopy=False) if t.number == number]
    return optuna.Trial(study, trial_id(frozen))


@contextmanager
def experimental() -> Iterator[None]:
    """Use Optuna's experimental-but-public features without their warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield
