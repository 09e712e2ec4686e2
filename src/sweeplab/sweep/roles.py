"""The two programs of a sweep, sharing one study set-up.

:func:`run_command` is the process the user started: it checks the search space, records what
the study is, runs the worker loop itself or starts the workers and watches them, and writes
the reports. :func:`run_worker` is a worker it started (a local process or a SLURM job): it
joins the study and runs the worker loop.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import optuna
from hydra.utils import get_method
from omegaconf import DictConfig, OmegaConf
from optuna.storages import BaseStorage

from sweeplab.checks import objectives
from sweeplab.errors import ConfigError, SweeplabError
from sweeplab.outputs import writable_dir
from sweeplab.overrides import format_override
from sweeplab.redaction import has_secret, redact
from sweeplab.sweep import queries, report, stopping, warm_start, workers
from sweeplab.sweep.algorithms import build_pruner, build_sampler
from sweeplab.sweep.conditional import with_branches
from sweeplab.sweep.context import STORAGE_ENV, TrialContext, share_storage
from sweeplab.sweep.identity import StudyIdentity
from sweeplab.sweep.progress import SweepProgress
from sweeplab.sweep.settings import SweepSettings, optuna_direction
from sweeplab.sweep.space_check import check_space
from sweeplab.sweep.spaces import LayerSpace, SearchSpace, base_overrides
from sweeplab.sweep.stopping import StoppingRules
from sweeplab.sweep.storage import local_file, open_storage
from sweeplab.sweep.wandb_study import log_study, wandb_settings
from sweeplab.sweep.worker import Budget, Launch, Worker
from sweeplab.trust import check_trusted, trusted_targets

__all__ = ["ReportsNotWritten", "Sweep", "open_sweep", "run_command", "run_worker"]

log = logging.getLogger(__name__)

Compose = Callable[[list[str]], DictConfig]
IN_MEMORY_URLS = ("sqlite://", "sqlite:///:memory:")
IsGroup = Callable[[str], bool]


@dataclass(frozen=True)
class Sweep:
    """A study opened for a sweep, with what its workers need."""

    settings: SweepSettings
    config: DictConfig
    space: SearchSpace
    study: optuna.Study
    storage: BaseStorage
    budget: Budget
    sweep_dir: Path
    started: float  # when the command (or worker) began: a time budget counts from here
    created: Path | None = None  # the directory this command made for a study it created

    def worker(self, launch: Launch) -> Worker:
        pruner = self.settings.pruner
        pruner_config = cast(
            "dict[str, Any] | None",
            OmegaConf.to_container(pruner, resolve=True) if pruner else None,
        )
        share_storage(self.settings.storage)  # for trials in other processes, never written

        def context(number: int) -> TrialContext:
            shared = TrialContext.for_trial(
                self.study.study_name, number, self.settings.storage, pruner_config
            )
            limits = {"deadline": queries.deadline(self.study)}
            return dataclasses.replace(shared, **limits, timeout_s=self.settings.trial_timeout)

        return Worker(
            self.study,
            self.storage,
            self.space,
            launch,
            self.budget,
            context,
            config=self.config,
            reuse_repeats=self.config.get("seed") is not None,
        )


def open_sweep(
    settings: SweepSettings,
    config: DictConfig,
    arguments: Sequence[str],
    compose: Compose,
    is_group: IsGroup,
    *,
    check_values: bool,
) -> Sweep:
    """Check the sweep against the run's config, build its search space, sampler and pruner
    (trying the space's values on the model when ``check_values``), and open the study.
    ``compose`` makes a trial's config from overrides and ``is_group`` tells config groups from
    values, both as Hydra's config loader does."""
    started = time.time()
    _check_storage_setting(config, settings.storage)
    metric_names = _check_objectives(list(settings.directions), config)
    space = SearchSpace.from_overrides(
        [format_override(str(k), v) for k, v in settings.params.items()] + list(arguments),
        layers=LayerSpace.from_config(settings.layers) if settings.layers else None,
        extend=_extender(settings.custom_search_space),
        is_group=is_group,
    )
    space = with_branches(
        space, settings.conditional, lambda extra: compose([*space.fixed, *extra]), is_group
    )
    sampler, n_trials = build_sampler(settings.sampler, space, settings.n_trials)
    pruner = build_pruner(settings.pruner)
    if len(settings.directions) > 1:
        _check_multi_objective(sampler, pruner)
    rules = StoppingRules(settings.timeout, settings.patience, settings.target)
    rules.check(list(settings.directions))
    if check_values:
        check_space(space, config, lambda extra: compose([*space.fixed, *extra]))
    identity = StudyIdentity(
        list(settings.directions),
        metric_names,
        base_overrides(config, space),
        space.distributions(),
        settings.custom_search_space or None,
    )
    # enqueued sets and the warm start's source are refused here, before anything is written
    warm_start.check(settings, space, identity.directions, identity.objectives)
    storage, existing = _existing_study(settings)
    widened = identity.compare_with(existing) if existing is not None else []
    # Everything is checked: only now is anything written.
    created = _first_missing(Path(config.hydra.sweep.dir)) if existing is None else None
    sweep_dir = writable_dir(Path(config.hydra.sweep.dir))
    storage = storage or open_storage(settings.storage, settings.heartbeat)
    study = optuna.create_study(
        study_name=settings.study_name,
        storage=storage,
        sampler=sampler,
        pruner=pruner,
        directions=list(settings.directions),
        load_if_exists=True,
    )
    identity.record(study, widened)
    budget = Budget(n_trials, settings.n_jobs, settings.max_failure_rate, rules)
    return Sweep(settings, config, space, study, storage, budget, sweep_dir, started, created)


def run_command(sweep: Sweep, launch: Launch) -> None:
    """The sweep command: run the study to ``n_trials`` (here, or in the workers it starts),
    then write the reports, also when it stops early."""
    study, settings = sweep.study, sweep.settings
    if study.trials:  # a resumed sweep: a seeded sampler would replay the first run's proposals
        study.sampler.reseed_rng()
    stopping.start_clock(study, settings.timeout, sweep.started)
    warm_start.seed(study, settings, sweep.space)  # here, not in workers: they join it seeded
    log.info(
        "Study %s in %s: %d of %d trials finished; sampler %s, pruner %s, %d worker(s)",
        study.study_name,
        redact(settings.storage),
        queries.count_finished(study),
        sweep.budget.n_trials,
        type(study.sampler).__name__,
        report.pruner_name(study.pruner),
        settings.workers,
    )
    try:
        if settings.workers == 1 and settings.cluster is None:
            sweep.worker(launch).run()
        else:
            _start_workers(sweep)
    except Exception:
        if not _discard_if_untouched(sweep):
            _write_reports(sweep, failing=True)
        raise
    except BaseException:  # a signal: the stopped trials are queued for the resume
        _write_reports(sweep, failing=True)
        raise
    _write_reports(sweep)
    log.info("Study stopped: %s. Results in %s", queries.stopped_by(study), sweep.sweep_dir)


class ReportsNotWritten(SweeplabError):
    """The sweep directory refused the reports (a full or read-only disk)."""


def _write_reports(sweep: Sweep, *, failing: bool = False) -> None:
    """Write the reports. A disk that refuses them loses no result (the study holds every
    trial; each report file is replaced atomically, so an old one stays whole), and the same
    command writes them again: one paragraph, or, while the sweep ``failing`` already has
    its own error, a warning that leaves that error to be the one shown."""
    try:
        plots = report.write_all(sweep.study, sweep.sweep_dir, sweep.settings.storage)
    except OSError as e:
        message = (
            f"The sweep's reports could not be written in {sweep.sweep_dir}: "
            f"{e.strerror or e}. Every finished trial is kept in the study "
            f"({redact(sweep.settings.storage)}); free space there (or make it writable), "
            "then run the same command again: it writes the reports of the study as it stands."
        )
        if failing:
            log.warning(message)
            return
        raise ReportsNotWritten(message) from None
    wandb = wandb_settings(sweep.config)
    if wandb is not None:
        log_study(sweep.study, sweep.sweep_dir, plots, wandb, sweep.settings.storage)


def _discard_if_untouched(sweep: Sweep) -> bool:
    """Remove a study this command created, and its directory, when it failed before any
    trial had an outcome (a launcher or cluster refusing the first job): a refused command
    leaves no empty study behind."""
    if sweep.created is None or any(queries.had_outcome(t) for t in sweep.study.trials):
        return False
    optuna.delete_study(study_name=sweep.study.study_name, storage=sweep.storage)
    shutil.rmtree(sweep.created, ignore_errors=True)
    return True


def _first_missing(path: Path) -> Path | None:
    """The outermost directory of ``path`` that does not exist yet."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    return missing[-1] if missing else None


def run_worker(sweep: Sweep, launch: Launch) -> None:
    """One of several workers: run trials until the study is done."""
    # Every worker's sampler starts from its own seed, or all would propose the same trials.
    sweep.study.sampler.reseed_rng()
    sweep.worker(launch).run()


def _start_workers(sweep: Sweep) -> None:
    settings, study, sweep_dir = sweep.settings, sweep.study, sweep.sweep_dir
    progress = SweepProgress(study, sweep.budget.n_trials)
    command = workers.worker_command(sweep_dir)
    if settings.cluster is None:
        log_dir = sweep_dir / "workers"
        codes = workers.run_local(
            command,
            workers.local_environments(settings.workers, settings.workers_per_gpu),
            log_dir,
            progress.poll,
        )
        errors = [
            workers.describe_exit(k, code, log_dir) for k, code in enumerate(codes) if code != 0
        ]
    else:
        if settings.storage.startswith("sqlite"):
            log.warning(
                "SLURM workers on a SQLite file: fine on one node, unreliable on a shared "
                "filesystem; use a PostgreSQL storage (README: Scaling out)."
            )
        errors = workers.run_slurm(
            command,
            settings.workers,
            settings.cluster,
            sweep_dir / "slurm",
            study.study_name,
            progress.poll,
        )
    finished = queries.count_finished(study)
    if finished < sweep.budget.n_trials and queries.stopped_by(study) is None:
        raise workers.WorkersFailed(
            f"The workers stopped with {finished} of {sweep.budget.n_trials} trials finished. "
            + " ".join(redact(e) for e in errors)
            + " Finished trials are kept; fix the cause, then run the same command again "
            "to resume."
        )
    for error in errors:
        log.warning("A worker ended badly, the others finished the study: %s", redact(error))


def _check_storage_setting(config: DictConfig, url: str) -> None:
    """A password written into ``hydra.sweeper.storage`` itself (on the command line or in a
    config) would be saved in every trial's .hydra/hydra.yaml and in the command W&B records;
    one read from the environment is saved as the ``${oc.env:...}`` that reads it. An
    in-memory database would lose the study when the command ends."""
    if url in IN_MEMORY_URLS:
        raise ConfigError(
            f"`hydra.sweeper.storage`={url} keeps the study in memory: it would be lost when "
            "the command ends, and workers could not share it. Leave the default (a SQLite "
            "file in the sweep directory) or give a file: sqlite:///path/to/optuna.db."
        )
    written = OmegaConf.to_container(config.hydra.sweeper, resolve=False).get("storage")
    if isinstance(written, str) and has_secret(written):
        raise ConfigError(
            f"`hydra.sweeper.storage`={redact(written)} holds a password, which the sweep "
            "would write into its .hydra files and W&B's record of the command. Keep it in "
            f"the environment: export {STORAGE_ENV}='<the URL>' (the sweeper reads it when "
            "hydra.sweeper.storage is not given), or use ~/.pgpass and a URL without the "
            "password, or read another variable with hydra.sweeper.storage='${oc.env:DB_URL}'."
        )


def _existing_study(settings: SweepSettings) -> tuple[BaseStorage | None, optuna.Study | None]:
    """The storage and the study of this name, if both exist already; creates neither."""
    file = local_file(settings.storage)
    if file is not None and not file.is_file():
        return None, None
    storage = open_storage(settings.storage, settings.heartbeat)
    if settings.study_name not in optuna.get_all_study_names(storage):
        return storage, None
    return storage, optuna.load_study(study_name=settings.study_name, storage=storage)


def _check_objectives(directions: list[str], config: DictConfig) -> list[str]:
    """The study must optimise the run's objectives, each the way the run ranks it; returns
    the objectives' metric names."""
    if config.get("optimized_metric") is None:  # another Hydra app: its return value decides
        return []
    metrics, wanted = objectives(config)
    expected = [optuna_direction(d) or str(d) for d in wanted]
    if directions != expected:
        raise ConfigError(
            f"`hydra.sweeper.direction`={directions} contradicts the objective: "
            f"optimized_metric={metrics} is best {', '.join(expected)}d "
            f"(optimized_direction={wanted}). Leave the direction to follow the objective, or "
            "switch the objective (objective=val_acc|val_loss|acc_vs_params|acc_vs_latency)."
        )
    return [str(m) for m in metrics]


def _check_multi_objective(
    sampler: optuna.samplers.BaseSampler | None, pruner: optuna.pruners.BasePruner
) -> None:
    if not isinstance(pruner, optuna.pruners.NopPruner):
        raise ConfigError(
            "Optuna cannot prune a trial of a multi-objective study (it has no single value "
            "to compare per epoch), so hydra/sweeper/pruner must be none: drop the pruner "
            "override, or optimise one objective."
        )
    if isinstance(sampler, optuna.samplers.CmaEsSampler):
        raise ConfigError(
            "The CMA-ES sampler optimises one objective, but this sweep has several: use "
            "hydra/sweeper/sampler=nsgaii (the usual choice), tpe, gp or random."
        )


def _extender(path: str | None) -> Callable[..., None] | None:
    if not path:
        return None
    check_trusted(path, "hydra.sweeper.custom_search_space", trusted_targets())
    try:
        return get_method(path)
    except Exception as e:
        raise ConfigError(
            f"`hydra.sweeper.custom_search_space`={path!r} cannot be imported ({e}): give the "
            "dotted path of a function(cfg, trial) on the Python path."
        ) from None
