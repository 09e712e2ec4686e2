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

__all__ = ["experimental", "rdb_database_calls", "trial_by_number", "trial_id"]

# RDBStorage's private methods that Optuna's cache in front of it (what a Study over an RDB
# storage really calls) uses instead of the public ones, and fail_stale_trials' stale check.
RDB_PRIVATE_CALLS = (
    "_create_new_trial",
    "_set_trial_param",
    "_get_best_trial_id",
    "_get_trials",
    "_get_stale_trial_ids",
)


def trial_id(trial: optuna.Trial | FrozenTrial) -> int:
    """The storage id of a live or frozen trial."""
    return trial._trial_id


def trial_by_number(study: optuna.Study, number: int) -> optuna.Trial:
    """A live handle on trial ``number``, e.g. for reporting from the process that runs it."""
    [frozen] = [t for t in study.get_trials(deepcopy=False) if t.number == number]
    return optuna.Trial(study, trial_id(frozen))


def rdb_database_calls() -> tuple[str, ...]:
    """Every ``RDBStorage`` method through which a study, a heartbeat or a stale check reaches
    the database: the storage API (``BaseStorage``), ``record_heartbeat``, and the private
    methods in :data:`RDB_PRIVATE_CALLS`."""
    from optuna.storages import BaseStorage, RDBStorage

    public = [  # remove_session only drops this thread's session
        n
        for n in vars(BaseStorage)
        if not n.startswith("_") and n != "remove_session" and callable(getattr(BaseStorage, n))
    ]
    names = (*sorted(public), "record_heartbeat", *RDB_PRIVATE_CALLS)
    if missing := [n for n in names if not callable(getattr(RDBStorage, n, None))]:
        raise RuntimeError(f"optuna {optuna.__version__}'s RDBStorage has no {missing}")
    return names


@contextmanager
def experimental() -> Iterator[None]:
    """Use Optuna's experimental-but-public features without their warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield
