"""Every read of a study: the best trial, the Pareto set, counts, the trials a report shows and
their table rows, and what a trial's stored attributes mean (its error, retry, epochs).

One module, so the sweeper, the workers, the progress lines, the result files and the W&B
study run all read a study the same way; writers (study.py, report.py) only write. The stored
attribute names themselves are in study.py.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, json_to_distribution
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState

from sweeplab.compat.optuna import experimental
from sweeplab.sweep import study as stored
from sweeplab.sweep.spaces import BRANCH

__all__ = [
    "FINISHED",
    "LOST_WORKER",
    "base_overrides",
    "best_by_choice",
    "best_overrides",
    "best_trial",
    "choice_keys",
    "complete_trials",
    "count",
    "count_finished",
    "counted_trials",
    "custom_search_space",
    "deadline",
    "duration_s",
    "epochs_run",
    "epochs_total",
    "error_of",
    "failures_since",
    "finished_by",
    "had_outcome",
    "is_multi_objective",
    "objective_names",
    "param_names",
    "pareto_trials",
    "ran",
    "reported_trials",
    "retry_of",
    "search_space",
    "search_space_history",
    "state_counts",
    "stopped_by",
    "trial",
    "trial_rows",
    "value_columns",
    "warm_started",
]

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)  # what counts towards n_trials
LOST_WORKER = "its worker died (killed, out of memory or node lost)"


# The study.


def is_multi_objective(study: optuna.Study) -> bool:
    return len(study.directions) > 1


def stopped_by(study: optuna.Study) -> str | None:
    """Why the last sweep of the study stopped (n_trials reached, or a stopping rule);
    ``None`` while one runs, and when it failed or was interrupted."""
    return study.user_attrs.get(stored.STOPPED_BY)


def deadline(study: optuna.Study) -> float | None:
    """When the running sweep's time budget ends (UNIX time), if it has one."""
    return study.user_attrs.get(stored.DEADLINE)


def objective_names(study: optuna.Study) -> list[str]:
    """The objectives' metric names (``value`` for an unnamed single objective)."""
    with experimental():  # metric names: experimental since Optuna 3.2
        names = study.metric_names
    return names or (
        ["value"]
        if len(study.directions) == 1
        else [f"value_{i}" for i in range(len(study.directions))]
    )


def value_columns(study: optuna.Study) -> list[str]:
    """Column names of the trials' values in tables: ``value``, or one per objective."""
    return objective_names(study) if is_multi_objective(study) else ["value"]


def base_overrides(study: optuna.Study) -> list[str]:
    """What every trial's overrides apply to (model, objective, ...), as stored at creation."""
    return list(study.user_attrs.get(stored.BASE_OVERRIDES, []))


def search_space_history(study: optuna.Study) -> list[dict[str, str]]:
    """The study's search space as created, then as each widening resume left it (JSON
    distributions by parameter name); empty for a study stored before spaces were."""
    return list(study.user_attrs.get(stored.SEARCH_SPACES, []))


def custom_search_space(study: optuna.Study) -> str | None:
    return study.user_attrs.get(stored.CUSTOM_SEARCH_SPACE)


def search_space(study: optuna.Study) -> dict[str, BaseDistribution] | None:
    """Every parameter a trial may have now (per-layer ones as ``key[i]``); ``None`` when
    that is unknown: a study stored before spaces were, or a custom_search_space's."""
    history = search_space_history(study)
    if not history or custom_search_space(study):
        return None
    return {name: json_to_distribution(text) for name, text in history[-1].items()}


def choice_keys(study: optuna.Study) -> list[str]:
    """The searched group choices that have conditional spaces (``model`` in an architecture
    study): a categorical parameter one of whose options prefixes other parameters."""
    space = search_space(study) or {}
    return [
        name
        for name, distribution in space.items()
        if BRANCH not in name
        and isinstance(distribution, CategoricalDistribution)
        and any(
            other.startswith(f"{option}{BRANCH}")
            for option in distribution.choices
            for other in space
        )
    ]


def best_by_choice(study: optuna.Study, key: str) -> dict[str, FrozenTrial]:
    """The best complete trial of each option of ``key`` (single objective), by option."""
    best: dict[str, FrozenTrial] = {}
    sign = 1 if study.direction == optuna.study.StudyDirection.MINIMIZE else -1
    for trial in complete_trials(study):
        option = str(trial.params.get(key))
        if key in trial.params and (
            option not in best or sign * trial.value < sign * best[option].value
        ):
            best[option] = trial
    return best


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    """The best complete trial of a single-objective study; ``None`` before the first one,
    and for a multi-objective study (see :func:`pareto_trials`)."""
    try:
        return study.best_trial
    except (ValueError, RuntimeError):  # no complete trial yet, or several objectives
        return None


def pareto_trials(study: optuna.Study) -> list[FrozenTrial]:
    """The non-dominated complete trials of a multi-objective study, by number."""
    return sorted(study.best_trials, key=lambda t: t.number)


def trial(study: optuna.Study, number: int) -> FrozenTrial:
    """Trial ``number`` as stored now (a study numbers its trials 0, 1, ... in order)."""
    return study.get_trials(deepcopy=False)[number]


def complete_trials(study: optuna.Study) -> list[FrozenTrial]:
    """The trials with values (reused duplicates included), by number."""
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


def count(study: optuna.Study, *states: TrialState) -> int:
    """Trials in any of ``states`` (surplus asks included: they are FAIL)."""
    return len(study.get_trials(deepcopy=False, states=states))


def count_finished(study: optuna.Study) -> int:
    """Trials that count towards ``n_trials``: complete or pruned, and run by this study (a
    warm start's copies are not: the budget is what this study ran)."""
    return sum(1 for t in study.get_trials(deepcopy=False, states=FINISHED) if not warm_started(t))


def counted_trials(study: optuna.Study) -> list[FrozenTrial]:
    """The trials that hold a place in ``n_trials``: finished or running, run by this study."""
    trials = study.get_trials(deepcopy=False, states=(*FINISHED, TrialState.RUNNING))
    return [t for t in trials if not warm_started(t)]


def finished_by(study: optuna.Study, when: datetime) -> int:
    """Trials complete or pruned at ``when`` and run by this study (so a line printed late
    still counts up, towards ``n_trials``)."""
    return sum(
        1
        for t in study.get_trials(deepcopy=False, states=FINISHED)
        if t.datetime_complete is not None and t.datetime_complete <= when and not warm_started(t)
    )


def failures_since(study: optuna.Study, first_number: int) -> list[FrozenTrial]:
    """Trials from ``first_number`` on that failed with an error of their own (a lost worker
    is retried instead, and is not the configuration's fault)."""
    return [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
        if t.number >= first_number and stored.ERROR in t.user_attrs
    ]


def reported_trials(study: optuna.Study) -> list[FrozenTrial]:
    """Every trial but surplus asks (two workers racing for the last place), never run."""
    return [t for t in study.get_trials(deepcopy=False) if not t.user_attrs.get(stored.SURPLUS)]


# One trial.


def epochs_run(trial: FrozenTrial) -> int:
    """Validation epochs the trial ran (its reported values, or the count kept for a
    multi-objective trial, which Optuna takes no per-epoch values from)."""
    return len(trial.intermediate_values) or int(trial.user_attrs.get(stored.EPOCHS, 0))


def retry_of(trial: FrozenTrial) -> int | None:
    """The trial a heartbeat retry re-runs (Optuna records it), or ``None``."""
    with experimental():  # since Optuna 2.8, still public
        return RetryHeartbeatStaleTrialCallback.retried_trial_number(trial)


def error_of(trial: FrozenTrial) -> str | None:
    """Why a failed trial failed, or ``None`` for one that did not fail or was never run."""
    if trial.state != TrialState.FAIL or trial.user_attrs.get(stored.SURPLUS):
        return None
    attrs = trial.user_attrs
    return attrs.get(stored.ERROR) or attrs.get(stored.ENDED_BY) or LOST_WORKER


def had_outcome(trial: FrozenTrial) -> bool:
    """Whether a run of this study told it how ``trial`` went (a value, a prune, its error,
    or why it was ended from outside: a stop that queued it again, a dead worker); a warm
    start's copy was not run here."""
    if warm_started(trial):
        return False
    attrs = trial.user_attrs
    return trial.state in FINISHED or stored.ERROR in attrs or stored.ENDED_BY in attrs


def ran(trial: FrozenTrial) -> bool:
    """Whether the trial was trained here (not a reused duplicate, not a surplus ask, not a
    warm start's copy)."""
    attrs = trial.user_attrs
    return not (stored.DUPLICATE_OF in attrs or attrs.get(stored.SURPLUS) or warm_started(trial))


def warm_started(trial: FrozenTrial) -> bool:
    """Whether the trial was copied from another study (``hydra.sweeper.warm_start``)."""
    return stored.WARM_START in trial.user_attrs


def best_overrides(trial: FrozenTrial, base: list[str]) -> list[str]:
    """The overrides that retrain ``trial``: the study's ``base`` ones, then the sampled."""
    return [*base, *trial.user_attrs.get(stored.OVERRIDES, [])]


def duration_s(trial: FrozenTrial) -> float | None:
    """Seconds from start to end, to 0.1 s; ``None`` for a trial not started or not ended."""
    if trial.datetime_start and trial.datetime_complete:
        return round((trial.datetime_complete - trial.datetime_start).total_seconds(), 1)
    return None


# Several trials.


def state_counts(trials: list[FrozenTrial]) -> dict[str, int]:
    """Trials per state, by lower-case state name, every state listed (0 for none)."""
    counts = {state.name.lower(): 0 for state in TrialState}
    for trial in trials:
        counts[trial.state.name.lower()] += 1
    return counts


def epochs_total(trials: list[FrozenTrial]) -> int:
    """Validation epochs run by the trials together: what pruning saves. A warm start's
    copies ran elsewhere, and a resumed trial's epochs carried over from the trial it goes on
    from ran once, there."""
    by_number = {t.number: t for t in trials}
    total = 0
    for trial in trials:
        if warm_started(trial):
            continue
        total += epochs_run(trial)
        failed = by_number.get(trial.user_attrs.get(stored.RESUMED_FROM, -1))
        if failed is not None:
            total -= epochs_run(failed) - int(trial.user_attrs.get(stored.EPOCHS_LOST, 0))
    return total


def param_names(trials: list[FrozenTrial]) -> list[str]:
    """Every parameter any of the trials has, in the order first seen."""
    names: dict[str, None] = {}
    for trial in trials:
        names.update(dict.fromkeys(trial.params))
    return list(names)


def trial_rows(
    trials: list[FrozenTrial], objectives: list[str]
) -> tuple[list[str], list[list[Any]]]:
    """One row per trial: number, state, the value of each objective, epochs, duration, every
    parameter ("" where a trial does not have it), error, duplicate_of, retry_of, worker, and
    where a warm start copied it from (a column only when some trial was copied).
    The table of trials.csv and of the W&B study run; epochs_lost (a column only when some
    trial retried a dead worker's) counts the epochs a retry's failed trial trained past its
    last checkpoint, which the retry trained again."""
    params = param_names(trials)
    retried = any(stored.EPOCHS_LOST in t.user_attrs for t in trials)
    copies = any(warm_started(t) for t in trials)
    header = ["number", "state", *objectives, "epochs", "duration_s", *params]
    header += ["error", "duplicate_of", "retry_of", "worker", *(["warm_start"] if copies else [])]
    header += ["epochs_lost"] if retried else []
    rows = []
    for t in trials:
        row = [t.number, t.state.name, *(t.values or [None] * len(objectives))]
        row += [epochs_run(t), duration_s(t)]
        row += [t.params.get(name, "") for name in params]  # "" = inactive parameter
        row += [error_of(t) or "", t.user_attrs.get(stored.DUPLICATE_OF, "")]
        retry = retry_of(t)
        row += ["" if retry is None else retry, t.user_attrs.get(stored.WORKER, "")]
        row += [t.user_attrs.get(stored.WARM_START, "")] if copies else []
        row += [t.user_attrs.get(stored.EPOCHS_LOST, "")] if retried else []
        rows.append(row)
    return header, rows
