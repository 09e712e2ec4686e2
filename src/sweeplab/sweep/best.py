"""The best configuration of a finished sweep, as Hydra overrides.

Like Keras Tuner's ``get_best_hyperparameters()``: read it from a sweep directory or from an
Optuna storage, print it, or train with it (``python train.py best_of=<sweep dir>``).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

import optuna
from omegaconf import DictConfig, OmegaConf

from sweeplab.errors import ConfigError
from sweeplab.overrides import override_key
from sweeplab.redaction import redact
from sweeplab.sweep import queries
from sweeplab.sweep.report import RESULTS_FILE
from sweeplab.sweep.storage import is_journal, open_existing_storage

__all__ = ["BEST_OF", "TRIAL", "BestTrial", "expand_best_of", "load_best"]

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
        return " ".join(shlex.quote(o) for o in self.overrides)

    def describe(self) -> str:
        shown = ", ".join(f"{v:.6g}" for v in self.values)
        return (
            f"# {self.study_name}: trial {self.number}, value{'s' * (len(self.values) > 1)} {shown}"
        )


def load_best(source: str, study_name: str | None = None) -> list[BestTrial]:
    """The best trial of a sweep directory (its ``optimization_results.yaml``) or of a study
    in an Optuna storage URL (``study_name`` may be left out when the storage holds one); for
    a multi-objective study, every trial of its Pareto set."""
    if "://" in source or is_journal(source):
        return _from_storage(source, study_name)
    results_path = Path(source).expanduser() / RESULTS_FILE
    if not results_path.is_file():
        raise ConfigError(
            f"{source} is not a sweep directory: it has no {RESULTS_FILE}. Pass the directory "
            "a sweep wrote (logs/sweeps/<study name>) or an Optuna storage URL such as "
            "sqlite:///logs/sweeps/<study name>/optuna.db."
        )
    try:
        results = OmegaConf.load(results_path)
    except Exception as e:  # not YAML: a file edited or cut short by hand
        raise ConfigError(
            f"{results_path} cannot be read ({type(e).__name__}). The study's storage still "
            "holds every trial: re-run the sweep's command to rewrite the file, or read the "
            f"study directly with sweeplab best sqlite:///{Path(source) / 'optuna.db'}."
        ) from None
    if study_name is not None and results.get("study_name") != study_name:
        raise ConfigError(
            f"The sweep in {source} is study {results.get('study_name')!r}, not {study_name!r}: "
            "--study selects a study in a storage URL; leave it out for a sweep directory."
        )
    name = str(results.get("study_name"))
    if isinstance(results, DictConfig) and results.get("solutions"):
        return [
            BestTrial(name, int(s.number), [float(v) for v in s["values"]], list(s.overrides))
            for s in results.solutions
        ]
    if not isinstance(results, DictConfig) or "best_overrides" not in results:
        raise ConfigError(
            f"The sweep in {source} has no complete trial yet, so no best configuration. "
            "Run (or resume) the sweep first."
        )
    overrides = [str(o) for o in results.best_overrides]
    return [BestTrial(name, int(results.best_trial), [float(results.best_value)], overrides)]


def _from_storage(storage: str, study_name: str | None) -> list[BestTrial]:
    opened = open_existing_storage(storage)
    names = optuna.get_all_study_names(opened)
    if study_name is not None and study_name not in names:
        raise ConfigError(
            f"The storage {redact(storage)} holds no study {study_name!r}; it holds "
            f"{', '.join(names) or 'none'}. Name one of them with --study."
        )
    if study_name is None:
        if len(names) != 1:
            raise ConfigError(
                f"The storage {redact(storage)} holds {len(names)} studies ({', '.join(names)}): "
                "name one with --study NAME."
            )
        study_name = names[0]
    study = optuna.load_study(study_name=study_name, storage=opened)
    if queries.is_multi_objective(study):
        best = queries.pareto_trials(study)
    else:
        best = [t for t in [queries.best_trial(study)] if t is not None]
    if not best:
        raise ConfigError(
            f"Study {study_name} has no complete trial yet, so no best configuration."
        )
    base = queries.base_overrides(study)
    return [
        BestTrial(study_name, t.number, list(t.values), queries.best_overrides(t, base))
        for t in best
    ]


def expand_best_of(argv: list[str]) -> list[str]:
    """Insert a sweep's best overrides where ``best_of=<dir>`` stands in ``argv``;
    ``trial=<n>`` picks trial n of a multi-objective sweep's Pareto set.

    The user's own overrides win: a best override whose key the user also sets is dropped.
    """
    positions = [i for i, arg in enumerate(argv) if arg.startswith(BEST_OF)]
    if not positions:
        return argv
    chosen_number = [arg for arg in argv if arg.startswith(TRIAL)]
    argv = [arg for arg in argv if not arg.startswith(TRIAL)]
    i = [j for j, arg in enumerate(argv) if arg.startswith(BEST_OF)][-1]
    source = argv[i][len(BEST_OF) :]
    best = _pick(
        source, load_best(source), chosen_number[-1][len(TRIAL) :] if chosen_number else None
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
