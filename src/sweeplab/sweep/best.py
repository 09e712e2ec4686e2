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
from sweeplab.redaction import redact
from sweeplab.sweep import study as stored
from sweeplab.sweep.report import RESULTS_FILE
from sweeplab.sweep.storage import is_journal, open_existing_storage

BEST_OF = "best_of="


@dataclass(frozen=True)
class BestTrial:
    study_name: str
    number: int
    value: float
    overrides: list[str]

    def command_line(self) -> str:
        return " ".join(shlex.quote(o) for o in self.overrides)


def load_best(source: str, study_name: str | None = None) -> BestTrial:
    """The best trial of a sweep directory (its ``optimization_results.yaml``) or of a study
    in an Optuna storage URL (``study_name`` may be left out when the storage holds one)."""
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
    if not isinstance(results, DictConfig) or "best_overrides" not in results:
        raise ConfigError(
            f"The sweep in {source} has no complete trial yet, so no best configuration. "
            "Run (or resume) the sweep first."
        )
    return BestTrial(
        study_name=str(results.study_name),
        number=int(results.best_trial),
        value=float(results.best_value),
        overrides=[str(o) for o in results.best_overrides],
    )


def _from_storage(storage: str, study_name: str | None) -> BestTrial:
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
    try:
        best = study.best_trial
    except ValueError:
        raise ConfigError(
            f"Study {study_name} has no complete trial yet, so no best configuration."
        ) from None
    overrides = [
        *study.user_attrs.get(stored.BASE_OVERRIDES, []),
        *best.user_attrs.get(stored.OVERRIDES, []),
    ]
    return BestTrial(study_name, best.number, float(best.value), overrides)


def expand_best_of(argv: list[str]) -> list[str]:
    """Insert a sweep's best overrides where ``best_of=<dir>`` stands in ``argv``.

    The user's own overrides win: a best override whose key the user also sets is dropped.
    """
    positions = [i for i, arg in enumerate(argv) if arg.startswith(BEST_OF)]
    if not positions:
        return argv
    i = positions[-1]
    best = load_best(argv[i][len(BEST_OF) :])
    user_keys = {_key(arg) for j, arg in enumerate(argv) if j != i and "=" in arg}
    named = [f"name={best.study_name}_best"]  # runs land in logs/runs/<study>_best/
    chosen = [o for o in [*named, *best.overrides] if _key(o) not in user_keys]
    return [*argv[: i + 1], *chosen, *argv[i + 1 :]]


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")
