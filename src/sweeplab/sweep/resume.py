"""Trials that resume: a trial keeps a last-epoch checkpoint (``last.ckpt``, next to
``best.ckpt``) while it runs, and a retry of a dead worker's trial goes on from it, in its own
directory, with the failed trial's W&B run (the pruner's carried values are pruning.py's)."""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from optuna.trial import TrialState

from sweeplab import tracking, trainers
from sweeplab.files import write_atomic
from sweeplab.sweep import queries
from sweeplab.sweep import study as stored
from sweeplab.sweep.context import TrialContext

__all__ = [
    "drop_last_checkpoints",
    "failed_trial",
    "last_checkpoint",
    "resumable",
    "resume_checkpoint",
    "without_lightning_requeue",
]

log = logging.getLogger(__name__)


def failed_trial(context: TrialContext) -> Any:
    """The failed trial (frozen) that this trial retries, or ``None``."""
    if context.resumes is None:
        return None
    return queries.trial(context.trial().study, context.resumes)


def resumable(
    context: TrialContext, callbacks: list[pl.Callback], loggers: list[Any]
) -> list[pl.Callback]:
    """A trial's callbacks with a ``last.ckpt`` written every epoch and what going on from
    one needs (:class:`trainers.Resumable`); a retry logs to the failed trial's W&B run."""
    if (failed := failed_trial(context)) is not None:
        tracking.continue_run(loggers, failed.user_attrs.get(stored.WANDB_RUN_ID))
    return [*callbacks, trainers.LastCheckpoint(), trainers.Resumable()]


def without_lightning_requeue(trainer_cfg: Any) -> dict[str, Any]:
    """The Trainer arguments that leave a SLURM requeue to the sweep. Under SLURM, Lightning
    requeues the job itself on SIGUSR1, saving an ``hpc_ckpt`` that no retry reads; a trial's
    job is requeued by submitit (``slurm_job``) and goes on from its ``last.ckpt`` instead.
    A trainer config that sets ``plugins`` keeps its own."""
    from pytorch_lightning.plugins.environments import SLURMEnvironment

    if "plugins" in trainer_cfg or not SLURMEnvironment.detect():
        return {}
    return {"plugins": [SLURMEnvironment(auto_requeue=False)]}


def last_checkpoint(
    run_dir: Path, number: int, resumes: int, checkpoint_dir: Path, name: str
) -> Path | None:
    """The last-epoch checkpoint ``name`` that trial ``resumes`` left, if there is one: its run
    directory is this trial's (``run_dir``, of trial ``number``) with the other number, as the
    sweep names them (``trial_<number>``), and its checkpoints are where this trial's go."""
    run_dir, checkpoint_dir = run_dir.resolve(), checkpoint_dir.resolve()
    match = re.fullmatch(rf"(.*\D)?{number}", run_dir.name)
    if match is None or not checkpoint_dir.is_relative_to(run_dir):
        log.warning(
            "Trial %d cannot go on from trial %d's checkpoint: its run directory %s is not "
            "named by its number (hydra.sweep.subdir), or its checkpoints are outside it.",
            number,
            resumes,
            run_dir,
        )
        return None
    failed_dir = run_dir.with_name(f"{match[1] or ''}{resumes}")
    path = failed_dir / checkpoint_dir.relative_to(run_dir) / name
    return path if path.is_file() else None


def resume_checkpoint(
    context: TrialContext | None, trainer: pl.Trainer, run_dir: Path
) -> Path | None:
    """The checkpoint a retry goes on from; ``None`` (a fresh start) for any other run, and
    for a retry of a trial that died in its first epoch.

    The retry starts with a copy of it as its own ``last.ckpt``: if the retry's worker dies
    too before an epoch of its own, the next retry goes on from there, not from epoch 0."""
    if context is None or context.resumes is None:
        return None
    if (own := trainers.last_checkpoint_path(trainer)) is None:
        return None
    source = last_checkpoint(run_dir, context.number, context.resumes, own.parent, own.name)
    if source is not None:
        own.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(own, lambda tmp: shutil.copyfile(source, tmp))
    return source


def drop_last_checkpoints(
    context: TrialContext, trainer: pl.Trainer, resumed_from: Path | None
) -> None:
    """Remove the trial's ``last.ckpt`` (and the one it went on from) once its outcome is its
    own: not when a heartbeat check has failed it meanwhile, for its retry goes on from it."""
    trial = context.trial()
    try:
        if queries.trial(trial.study, trial.number).state != TrialState.RUNNING:
            return
    except Exception as e:  # the storage is unreachable: keep the checkpoints, to be safe
        log.warning("Kept trial %d's last.ckpt: cannot read its state (%s)", trial.number, e)
        return
    for path in (trainers.last_checkpoint_path(trainer), resumed_from):
        if path is not None:
            path.unlink(missing_ok=True)
