"""The best configuration of a finished sweep, as Hydra overrides.

Like Keras Tuner's ``get_best_hyperparameters()``: read it from a sweep directory or from an
Optuna storage, print it, or train with it (``python train.py best_of=<sweep dir>``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.distributions import json_to_distribution

from sweeplab.errors import ConfigError
from sweeplab.overrides import override_key
from sweeplab.redaction import redact
from sweeplab.sweep import queries
from sweeplab.sweep.recorded import check_plain, check_recorded
from sweeplab.sweep.report import BEST_PER_CHOICE, RESULTS_FILE, shell_command
from sweeplab.sweep.storage import is_journal, open_existing_storage, study_name_in

__all__ = [
    "BEST_OF",
    "TRIAL",
    "BestTrial",
    "expand_best_of",
    "load_best",
    "load_best_per_choice",
    "recorded_choices",
]

BEST_OF = "best_of="
TRIAL = "trial="  # with best_of: which Pareto trial to retrain


@dataclass(frozen=True)
class BestTrial:
    """A trial worth retraining: the best one, or one of a multi-objective Pareto set."""

    study_name: str
    number: int
    values: list[float]
    overrides: list[str]

    def command_line(self) -> str:
        return shell_command(self.overrides)

    def describe(self) -> str:
        shown = ", ".join(f"{v:.6g}" for v in self.values)
        return (
            f"# {self.study_name}: trial {self.number}, value{'s' * (len(self.values) > 1)} {shown}"
        )


def load_best(
    source: str, study_name: str | None = None, choice: tuple[str, str] | None = None
) -> list[BestTrial]:
    """The best trial of a sweep directory (its ``optimization_results.yaml``) or of a study
    in an Optuna storage URL (``study_name`` may be left out when the storage holds one); for
    a multi-objective study, every trial of its Pareto set. ``choice`` (``("model", "cnn")``)
    asks for the best trial with that option of a conditional choice instead."""
    if "://" in source or is_journal(source):
        return _from_storage(source, study_name, choice)
    results_path = Path(source).expanduser() / RESULTS_FILE
    if not results_path.is_file():
        raise ConfigError(
            f"{source} is not a sweep directory: it has no {RESULTS_FILE}. Pass the directory "
            "a sweep wrote (logs/sweeps/<study name>) or an Optuna storage URL such as "
            "sqlite:///logs/sweeps/<study name>/optuna.db."
        )
    try:  # plain YAML: a results file is data, never resolved as a config
        results = yaml.safe_load(results_path.read_text())
    except Exception as e:  # not YAML: a file edited or cut short by hand
        raise ConfigError(
            f"{results_path} cannot be read ({type(e).__name__}). The study's storage still "
            "holds every trial: re-run the sweep's command to rewrite the file, or read the "
            f"study directly with sweeplab best sqlite:///{Path(source) / 'optuna.db'}."
        ) from None
    if not isinstance(results, dict):
        results = {}
    if study_name is not None and results.get("study_name") != study_name:
        raise ConfigError(
            f"The sweep in {source} is study {results.get('study_name')!r}, not {study_name!r}: "
            "--study selects a study in a storage URL; leave it out for a sweep directory."
        )
    if not (results.get("solutions") or "best_overrides" in results):
        raise ConfigError(
            f"The sweep in {source} has no complete trial yet, so no best configuration. "
            "Run (or resume) the sweep first."
        )
    try:
        return _from_results(results, str(results_path), choice)
    except ConfigError:
        raise
    except Exception as e:  # fields edited by hand
        raise ConfigError(
            f"{results_path} lacks what a sweep writes ({type(e).__name__}: {e}). Re-run the "
            "sweep's command to rewrite it, or read the study with sweeplab best "
            f"sqlite:///{Path(source) / 'optuna.db'}."
        ) from None


def _from_results(
    results: dict[str, Any], where: str, choice: tuple[str, str] | None
) -> list[BestTrial]:
    """The best trial(s) a results file names, their overrides checked against the base
    overrides, parameters and search space recorded with them."""
    base = [str(o) for o in results.get("base_overrides") or []]
    recorded = results.get("search_space")
    space = {k: json_to_distribution(str(v)) for k, v in recorded.items()} if recorded else None
    if choice is not None:
        options = (results.get(BEST_PER_CHOICE) or {}).get(choice[0]) or {}
        s = options.get(choice[1]) or _no_choice(where, choice, list(options))
        chosen = [(s["number"], s["values"], s["overrides"], s["params"])]
    elif results.get("solutions"):
        chosen = [
            (s["number"], s["values"], s["overrides"], s["params"]) for s in results["solutions"]
        ]
    else:
        chosen = [
            (
                results["best_trial"],
                [results["best_value"]],
                results["best_overrides"],
                results["best_params"],
            )
        ]
    trials = []
    for number, values, overrides, params in chosen:
        overrides = [str(o) for o in overrides]
        if "base_overrides" in results:
            check_recorded(overrides, where, base=base, params=dict(params), space=space)
        else:  # written before base overrides were recorded: what the file can tell
            check_plain(overrides, where)
        values = [float(v) for v in values]
        trials.append(BestTrial(str(results["study_name"]), int(number), values, overrides))
    return trials


def _from_storage(
    storage: str, study_name: str | None, choice: tuple[str, str] | None
) -> list[BestTrial]:
    opened = open_existing_storage(storage)
    study_name = study_name_in(opened, storage, study_name)
    study = optuna.load_study(study_name=study_name, storage=opened)
    if choice is not None:
        by_option = queries.best_by_choice(study, choice[0])
        best = [by_option.get(choice[1]) or _no_choice(study_name, choice, list(by_option))]
    elif queries.is_multi_objective(study):
        best = queries.pareto_trials(study)
    else:
        best = [t for t in [queries.best_trial(study)] if t is not None]
    if not best:
        raise ConfigError(
            f"Study {study_name} has no complete trial yet, so no best configuration."
        )
    base, space = queries.base_overrides(study), queries.search_space(study)
    where = f"study {study_name} of {redact(storage)}"
    trials = []
    for trial in best:
        overrides = queries.best_overrides(trial, base)
        check_recorded(overrides, where, base=base, params=trial.params, space=space)
        trials.append(BestTrial(study_name, trial.number, list(trial.values), overrides))
    return trials


def recorded_choices(source: str) -> dict[str, list[str]]:
    """The conditional choices (``model`` of an architecture study) whose best trials a sweep
    directory or study records per option, with those options."""
    if "://" in source or is_journal(source):
        opened = open_existing_storage(source)
        study = optuna.load_study(study_name=study_name_in(opened, source), storage=opened)
        return {key: list(queries.best_by_choice(study, key)) for key in queries.choice_keys(study)}
    try:
        results = yaml.safe_load((Path(source).expanduser() / RESULTS_FILE).read_text())
    except Exception:  # load_best says what is wrong with the file
        return {}
    recorded = results.get(BEST_PER_CHOICE) if isinstance(results, dict) else None
    if not isinstance(recorded, dict):
        return {}
    return {str(key): list(options or {}) for key, options in recorded.items()}


def load_best_per_choice(source: str, key: str, study_name: str | None = None) -> list[BestTrial]:
    """The best trial of each option of conditional choice ``key``."""
    options = recorded_choices(source).get(key)
    if not options:
        raise ConfigError(
            f"{redact(source)} records no best trial per {key}: --per-choice names a group that "
            "the study chose with a space per option (hydra.sweeper.conditional), such as model "
            "in hparams_search=arch_optuna."
        )
    return [load_best(source, study_name, (key, option))[0] for option in options]


def _no_choice(where: str, choice: tuple[str, str], options: list[str]) -> Any:
    key, option = choice
    raise ConfigError(
        f"{where} has no complete trial with {key}={option}, so no best configuration for it. "
        f"It has best trials for {key}={', '.join(options) or '(none yet)'}."
    )


def expand_best_of(argv: list[str]) -> list[str]:
    """Insert a sweep's best overrides where ``best_of=<dir>`` stands in ``argv``;
    ``trial=<n>`` picks trial n of a multi-objective sweep's Pareto set, and an option of a
    conditional choice (``model=cnn`` after ``best_of`` of an architecture study) the best
    trial with that option.

    The user's own overrides win: a best override whose key the user also sets is dropped.
    """
    positions = [i for i, arg in enumerate(argv) if arg.startswith(BEST_OF)]
    if not positions:
        return argv
    chosen_number = [arg for arg in argv if arg.startswith(TRIAL)]
    argv = [arg for arg in argv if not arg.startswith(TRIAL)]
    i = [j for j, arg in enumerate(argv) if arg.startswith(BEST_OF)][-1]
    source = argv[i][len(BEST_OF) :]
    keys = recorded_choices(source)
    options = [(override_key(a), a.split("=", 1)[1]) for a in argv if override_key(a) in keys]
    best = _pick(
        source,
        load_best(source, choice=options[-1] if options else None),
        chosen_number[-1][len(TRIAL) :] if chosen_number else None,
    )
    user_keys = {override_key(arg) for j, arg in enumerate(argv) if j != i and "=" in arg}
    named = [f"name={best.study_name}_best"]  # runs land in logs/runs/<study>_best/
    chosen = [o for o in [*named, *best.overrides] if override_key(o) not in user_keys]
    return [*argv[: i + 1], *chosen, *argv[i + 1 :]]


def _pick(source: str, candidates: list[BestTrial], number: str | None) -> BestTrial:
    numbers = [c.number for c in candidates]
    if number is None:
        if len(candidates) > 1:
            raise ConfigError(
                f"The sweep in {source} optimised several objectives: its Pareto set holds "
                f"trials {', '.join(map(str, numbers))}, none better on every objective. Pick "
                f"one with trial=<number> (sweeplab best {source} lists their values)."
            )
        return candidates[0]
    if not number.isdigit() or int(number) not in numbers:
        raise ConfigError(
            f"trial={number} is not a trial to retrain from {source}: pick one of "
            f"{', '.join(map(str, numbers))} (the Pareto set, or the best trial)."
        )
    return candidates[numbers.index(int(number))]
