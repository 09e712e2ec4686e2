"""Seeding a study before its first trial: override sets to run first
(``hydra.sweeper.enqueue``) and the finished trials of an earlier study
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
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.utils import to_absolute_path
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import FrozenTrial, TrialState, create_trial

from sweeplab.compat.optuna import experimental
from sweeplab.errors import ConfigError
from sweeplab.redaction import MASK, redact
from sweeplab.sweep import study as stored
from sweeplab.sweep.report import RESULTS_FILE
from sweeplab.sweep.settings import SweepSettings
from sweeplab.sweep.spaces import BRANCH, LayerSpace, SearchSpace
from sweeplab.sweep.storage import DEFAULT_SQLITE_FILE, local_file, open_existing_storage

__all__ = [
    "COPIED_ATTRS",
    "Source",
    "check",
    "copy_trials",
    "enqueue",
    "enqueued_params",
    "seed",
    "source_of",
]

log = logging.getLogger(__name__)

# What a copy keeps of its trial's own attributes: what retrains it (best_of) and what reports
# show; never another study's bookkeeping (worker, retries, duplicates).
COPIED_ATTRS = (stored.OVERRIDES, stored.EPOCHS, stored.MODEL_PARAMS)
ENQUEUE_FORM = (
    "Give each set as a list of key=value overrides of the search space: in a config, "
    "enqueue: [[model.net.units=100, model.optimizer.lr=0.001]]; on the command line, "
    "\"hydra.sweeper.enqueue=[['model.net.units=100','model.optimizer.lr=0.001']]\"."
)
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


# Enqueued override sets.


def enqueued_params(sets: Sequence[Any], space: SearchSpace) -> list[dict[str, Any]]:
    """Each override set as the trial parameters it fixes (per-layer lists as ``key[i]`` and
    the layer count, a conditional key under the option the set chooses); a ConfigError
    that names the set and the key for anything the space cannot propose."""
    return [
        _params(space, _values(given, f"hydra.sweeper.enqueue[{i}]"), i)
        for i, given in enumerate(sets)
    ]


def enqueue(study: optuna.Study, sets: list[dict[str, Any]]) -> None:
    """Queue each set's parameters to run first (only the sweep command does: Optuna's
    ``skip_if_exists`` is not safe between processes)."""
    before = len(study.get_trials(deepcopy=False))
    for params in sets:
        study.enqueue_trial(params, skip_if_exists=True)  # a resume enqueues nothing twice
    added = len(study.get_trials(deepcopy=False)) - before
    log.info(
        "Enqueued %d override set(s) of hydra.sweeper.enqueue to run first; %d already in the "
        "study",
        added,
        len(sets) - added,
    )


def _values(given: Any, where: str) -> dict[str, Any]:
    """An override set (``[key=value, ...]`` or ``{key: value}``) as typed values by key."""
    if isinstance(given, Mapping):
        return {str(key): value for key, value in given.items()}
    if not isinstance(given, list | tuple) or not all(isinstance(o, str) for o in given):
        raise ConfigError(
            f"`{where}`={given!r} is not a list of key=value overrides. {ENQUEUE_FORM}"
        )
    try:
        parsed = OverridesParser.create().parse_overrides(list(given))
    except Exception as e:  # Hydra's parser error: its first line says where
        raise ConfigError(
            f"`{where}` cannot be read: {str(e).splitlines()[0]} {ENQUEUE_FORM}"
        ) from None
    values = {}
    for override in parsed:
        if override.is_sweep_override() or override.is_delete() or override.value() is None:
            raise ConfigError(
                f"`{where}`: `{override.input_line}` is not one value: an enqueued set fixes "
                f"each key it names to a single value. {ENQUEUE_FORM}"
            )
        values[override.key_or_group] = override.value()
    return values


def _params(space: SearchSpace, values: dict[str, Any], index: int) -> dict[str, Any]:
    where = f"hydra.sweeper.enqueue[{index}]"
    used: set[str] = set()
    params = _resolve(space, values, "", used, where)
    if unknown := [key for key in values if key not in used]:
        key = unknown[0]
        if owners := _owners(space, key):  # a conditional key: its option must be chosen
            raise ConfigError(
                f"`{where}` sets `{key}`, which only the space of {' or '.join(owners)} "
                f"searches, but the set does not choose it: add {owners[0]} to the set."
            )
        raise ConfigError(
            f"`{where}` sets `{key}`, which is not in the sweep's search space "
            f"({', '.join(_searched(space))}), so the trial could not run it as given. "
            "Enqueue only searched keys (the others are sampled), or add the key to "
            "hydra.sweeper.params."
        )
    return params


def _resolve(
    space: SearchSpace, values: dict[str, Any], prefix: str, used: set[str], where: str
) -> dict[str, Any]:
    """The trial parameters ``values`` fix in ``space`` (named after ``prefix``), as
    ``SearchSpace._suggest`` names them; records the keys it used."""
    params = {}
    for key, distribution in space.params.items():
        if key in values:
            params[prefix + key] = _fitted(where, key, values[key], distribution)
            used.add(key)
    if space.layers:
        params |= _layer_params(space.layers, values, prefix, used, where)
    for group, options in space.branches.items():
        option = str(values.get(group))
        if group in values and option in options:  # only the chosen option's space applies
            params |= _resolve(options[option], values, f"{prefix}{option}{BRANCH}", used, where)
    return params


def _layer_params(
    layers: LayerSpace, values: dict[str, Any], prefix: str, used: set[str], where: str
) -> dict[str, Any]:
    """A per-layer key's list as ``key[i]`` parameters, and the layer count it implies."""
    given = {key: values[key] for key in layers.params if key in values}
    counts = {len(v) for v in given.values() if isinstance(v, list)}
    if any(not isinstance(v, list) for v in given.values()) or len(counts) > 1:
        raise ConfigError(
            f"`{where}` gives {', '.join(f'{k}={v}' for k, v in given.items())}: a per-layer "
            "key takes one value per layer, as a list, the same length for every such key "
            f"({next(iter(layers.params))}=[75,100] for two layers)."
        )
    params = {}
    if layers.count_name in values or counts:
        count = values.get(layers.count_name, next(iter(counts), None))
        if counts and count != next(iter(counts)):
            raise ConfigError(
                f"`{where}` sets {layers.count_name}={count} but gives "
                f"{next(iter(counts))} layer value(s): give as many values as layers."
            )
        params[prefix + layers.count_name] = _fitted(where, layers.count_name, count, layers.count)
        used.add(layers.count_name)
    for key, listed in given.items():
        for i, value in enumerate(listed):
            params[f"{prefix}{key}[{i}]"] = _fitted(where, f"{key}[{i}]", value, layers.params[key])
        used.add(key)
    return params


def _fitted(where: str, key: str, value: Any, distribution: BaseDistribution) -> Any:
    """``value`` as the distribution holds it (100.0 -> 100 for an int); a ConfigError when
    the space could not propose it."""
    if not _fits(value, distribution):
        raise ConfigError(
            f"`{where}` sets `{key}={value}`, outside the search space ({key}: "
            f"{_describe(distribution)}), so the trial could not run it as given. Enqueue a "
            "value the space can propose, or widen the space."
        )
    return distribution.to_external_repr(distribution.to_internal_repr(value))


def _fits(value: Any, distribution: BaseDistribution) -> bool:
    """Whether ``distribution`` holds ``value``: Optuna's own check of a trial's parameters."""
    try:
        create_trial(
            state=TrialState.WAITING, params={"p": value}, distributions={"p": distribution}
        )
    except (ValueError, TypeError):
        return False
    return not isinstance(value, bool) or isinstance(distribution, CategoricalDistribution)


def _describe(distribution: BaseDistribution) -> str:
    if isinstance(distribution, CategoricalDistribution):
        return f"choice{tuple(distribution.choices)}"
    assert isinstance(distribution, FloatDistribution | IntDistribution)  # the kinds sampled
    step = f" step {distribution.step}" if distribution.step not in (None, 1) else ""
    return f"{'log ' if distribution.log else ''}{distribution.low}..{distribution.high}{step}"


def _searched(space: SearchSpace) -> list[str]:
    keys = [*space.params, *(space.layers.params if space.layers else {})]
    return keys + ([space.layers.count_name] if space.layers else [])


def _owners(space: SearchSpace, key: str) -> list[str]:
    """The group choices (``model=cnn``) whose own space searches ``key``."""
    found = []
    for group, options in space.branches.items():
        for option, branch in options.items():
            if key in _searched(branch):
                found.append(f"{group}={option}")
            found += _owners(branch, key)
    return found


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
