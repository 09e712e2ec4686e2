"""Seeding a study before its first trial: override sets to run first
(``hydra.sweeper.enqueue``, mapped in enqueue.py) and the finished trials of an earlier study
(``hydra.sweeper.warm_start``).

:func:`check` runs while the sweep is opened, before anything is written, so a bad set or a
missing source is one paragraph; :func:`seed` runs once in the sweep command (never in its
workers), and is safe to run again on a resume: a set already in the study is not enqueued
again (Optuna's ``skip_if_exists``) and a trial already copied is not copied again (its
:data:`~sweeplab.sweep.study.WARM_START` marker). Copies are complete trials that samplers and
pruners learn from, but they are never retrained and do not count towards ``n_trials``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import yaml
from hydra.utils import to_absolute_path
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState, create_trial

from sweeplab.compat.optuna import experimental
from sweeplab.errors import ConfigError
from sweeplab.redaction import MASK, redact
from sweeplab.sweep import study as stored
from sweeplab.sweep.enqueue import enqueue, enqueued_params
from sweeplab.sweep.report import RESULTS_FILE
from sweeplab.sweep.settings import SweepSettings
from sweeplab.sweep.spaces import SearchSpace
from sweeplab.sweep.storage import DEFAULT_SQLITE_FILE, local_file, open_existing_storage

__all__ = [
    "COPIED_ATTRS",
    "Source",
    "check",
    "copy_trials",
    "seed",
    "source_of",
]

log = logging.getLogger(__name__)

# What a copy keeps of its trial's own attributes: what retrains it (best_of) and what reports
# show; never another study's bookkeeping (worker, retries, duplicates).
COPIED_ATTRS = (stored.OVERRIDES, stored.EPOCHS, stored.MODEL_PARAMS)
_URL = re.compile(r"^[a-zA-Z][\w+.-]*:")  # sqlite:///..., postgresql://..., journal:...


@dataclass(frozen=True)
class Source:
    """The study a warm start copies from: its storage URL and name."""

    storage: str
    study_name: str

    def __str__(self) -> str:
        return f"study {self.study_name} in {redact(self.storage)}"

    def marker(self, number: int) -> str:
        """What a copy of trial ``number`` records as its origin (never a password)."""
        return f"{self.study_name} trial {number} ({redact(self.storage)})"


def check(
    settings: SweepSettings,
    space: SearchSpace,
    directions: Sequence[str],
    objectives: Sequence[str],
) -> None:
    """Refuse, before anything is written, an enqueued set the space cannot run and a
    warm-start source that is missing or optimises something else."""
    enqueued_params(settings.enqueue, space)
    if settings.warm_start:
        source = source_of(settings)
        _check_objectives(_load(source), source, directions, objectives)


def seed(study: optuna.Study, settings: SweepSettings, space: SearchSpace) -> None:
    """Copy the warm start's trials, then enqueue the override sets (an enqueued set that a
    copy already answers is then skipped, not retrained)."""
    if settings.warm_start:
        source = source_of(settings)
        copied, _ = copy_trials(study, _load(source), source, space.distributions())
        if copied:  # a seeded sampler would replay the source's proposals: repeats, not trials
            study.sampler.reseed_rng()
    if settings.enqueue:
        enqueue(study, enqueued_params(settings.enqueue, space))


# Warm starts.


def source_of(settings: SweepSettings) -> Source:
    """The warm start's study: a storage URL (``warm_start_study`` names the study, else this
    study's own name) or a sweep directory (its results file says where its study is)."""
    source = _source(settings, str(settings.warm_start))
    if (source.storage, source.study_name) == (settings.storage, settings.study_name):
        raise ConfigError(
            f"`hydra.sweeper.warm_start` names this sweep's own {source}: its trials are here "
            "already. Drop warm_start to resume the study, or give this sweep a new name=..."
        )
    return source


def _source(settings: SweepSettings, given: str) -> Source:
    if _URL.match(given):
        return Source(given, settings.warm_start_study or settings.study_name)
    directory = Path(to_absolute_path(str(Path(given).expanduser())))
    results = _read_results(directory, given)
    storage = str(results["storage"])
    moved = local_file(storage)
    if moved is not None and not moved.exists() and (directory / DEFAULT_SQLITE_FILE).is_file():
        storage = f"sqlite:///{directory / DEFAULT_SQLITE_FILE}"  # the directory was moved
    if MASK in storage:  # the file keeps the URL with its password masked
        raise ConfigError(
            f"`hydra.sweeper.warm_start`={given}: its study is in {storage}, whose password the "
            "results file does not keep. Give the storage URL itself, read from the "
            "environment: hydra.sweeper.warm_start='${oc.env:SOURCE_DB}' "
            f"hydra.sweeper.warm_start_study={results['study_name']}."
        )
    return Source(storage, settings.warm_start_study or str(results["study_name"]))


def _read_results(directory: Path, given: str) -> dict[str, Any]:
    path = directory / RESULTS_FILE
    try:
        results = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        reason = "does not exist" if isinstance(e, FileNotFoundError) else f"cannot be read ({e})"
        reason = reason.splitlines()[0]
        results, problem = None, f"{path} {reason}"
    else:
        problem = f"{path} names no storage and study_name"
    if isinstance(results, dict) and results.get("storage") and results.get("study_name"):
        return results
    raise ConfigError(
        f"`hydra.sweeper.warm_start`={given} is not a sweep directory: {problem}. Give the "
        "directory of an earlier sweep (logs/sweeps/<study name>, where its "
        f"{RESULTS_FILE} is), or its storage URL with hydra.sweeper.warm_start_study=<name>."
    )


def _load(source: Source) -> optuna.Study:
    """The source study, read without creating anything (no file, no study)."""
    storage = open_existing_storage(source.storage)
    names = optuna.get_all_study_names(storage)
    if source.study_name not in names:
        raise ConfigError(
            f"`hydra.sweeper.warm_start`: {redact(source.storage)} holds no study "
            f"{source.study_name!r}; it holds {', '.join(names) or 'none'}. Name one with "
            "hydra.sweeper.warm_start_study=<name>."
        )
    return optuna.load_study(study_name=source.study_name, storage=storage)


def _check_objectives(
    study: optuna.Study, source: Source, directions: Sequence[str], objectives: Sequence[str]
) -> None:
    """Copies must rank the same way here: same directions, and the same metrics where both
    studies name theirs."""
    theirs = [d.name.lower() for d in study.directions]
    with experimental():  # metric names: experimental since Optuna 3.2
        named = list(study.metric_names or [])
    if theirs == list(directions) and (not named or not objectives or named == list(objectives)):
        return
    raise ConfigError(
        f"`hydra.sweeper.warm_start`: {source} optimises {named or 'its value'} "
        f"({', '.join(theirs)}), but this sweep optimises {list(objectives) or 'its value'} "
        f"({', '.join(directions)}): its values would rank this study's trials wrongly. "
        "Warm-start from a study with the same objective, or set this sweep's objective to "
        "match it (objective=val_loss|val_acc|...)."
    )


def copy_trials(
    study: optuna.Study,
    source_study: optuna.Study,
    source: Source,
    space: Mapping[str, BaseDistribution],
) -> tuple[int, int]:
    """Copy ``source_study``'s complete trials whose parameters all lie in ``space`` (by
    parameter name, per-layer ones as ``key[i]``), each once; returns (copied, skipped)."""
    done = {t.user_attrs.get(stored.WARM_START) for t in study.get_trials(deepcopy=False)}
    copied = skipped = 0
    for trial in source_study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if source.marker(trial.number) in done:  # a re-run copies nothing twice
            continue
        copy = _copy(trial, space, source.marker(trial.number))
        if copy is None:
            skipped += 1
            continue
        study.add_trial(copy)
        copied += 1
    log.info(
        "Warm start from %s: %d trial(s) copied, %d skipped (parameters outside this search "
        "space), %d copied before",
        source,
        copied,
        skipped,
        len(done & {source.marker(t.number) for t in source_study.get_trials(deepcopy=False)}),
    )
    return copied, skipped


def _copy(trial: FrozenTrial, space: Mapping[str, BaseDistribution], marker: str) -> Any:
    """``trial`` as a complete trial of this space, marked; ``None`` if a parameter does not
    fit (this space's distributions, so samplers see one distribution per parameter)."""
    distributions = {}
    for name in trial.params:
        distribution = space.get(name) or space.get(re.sub(r"\[\d+\]$", "[i]", name))
        if distribution is None:
            return None
        distributions[name] = distribution
    attrs = {k: trial.user_attrs[k] for k in COPIED_ATTRS if k in trial.user_attrs}
    try:
        copy = create_trial(
            state=TrialState.COMPLETE,
            values=trial.values,
            params=trial.params,
            distributions=distributions,
            user_attrs=attrs | {stored.WARM_START: marker},
            intermediate_values=trial.intermediate_values,  # what pruners compare against
        )
    except ValueError:  # a value outside this space's distribution
        return None
    # its own times, so reports show how long it trained
    copy.datetime_start, copy.datetime_complete = trial.datetime_start, trial.datetime_complete
    return copy
