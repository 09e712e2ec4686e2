"""A worker: the ask-run-tell loop that every sweep process runs on the shared study.

Workers share nothing but the storage, so one process, several local processes, several
machines and SLURM jobs all run this same loop. A worker asks for its next trial as soon as
its last one ends, and stops once the study has ``n_trials`` finished (complete or pruned)
trials; it never starts a trial while finished + running trials already reach ``n_trials``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import optuna
from hydra.core.utils import JobReturn
from omegaconf import OmegaConf
from optuna.storages import BaseStorage, fail_stale_trials
from optuna.trial import TrialState

from sweeplab import signals
from sweeplab.compat.optuna import experimental, trial_id
from sweeplab.errors import SweeplabError
from sweeplab.redaction import redact
from sweeplab.sweep import leases, queries, stopping
from sweeplab.sweep import study as stored
from sweeplab.sweep.context import TrialContext, handing_over
from sweeplab.sweep.progress import SweepProgress
from sweeplab.sweep.spaces import SearchSpace
from sweeplab.sweep.stopping import StoppingRules
from sweeplab.sweep.storage import has_heartbeat

__all__ = ["Budget", "Launch", "SweepFailed", "Worker", "worker_name"]

log = logging.getLogger(__name__)

Launch = Callable[[Sequence[Sequence[str]], int], Sequence[JobReturn]]


class SweepFailed(SweeplabError):
    """More trials failed than the sweep tolerates."""


@dataclass(frozen=True)
class Budget:
    n_trials: int  # finished trials the study should reach, over all workers
    n_jobs: int = 1  # trials asked at once and launched as one batch
    max_failure_rate: float = 0.25  # share of n_trials that may fail before the sweep stops
    rules: StoppingRules = StoppingRules()  # time budget, patience, target

    def too_many(self, failures: int) -> bool:
        return failures > self.max_failure_rate * self.n_trials


def worker_name() -> str:
    """host:pid, with the SLURM job and the GPUs the worker was given, for reports."""
    notes = []
    if job := os.environ.get("SLURM_JOB_ID"):
        notes.append(f"SLURM job {job}")
    if gpus := os.environ.get("CUDA_VISIBLE_DEVICES"):
        notes.append(f"GPU {gpus}")
    return f"{socket.gethostname()}:{os.getpid()}" + (f" ({', '.join(notes)})" if notes else "")


class Worker:
    """Runs trials of ``study`` until the study is done; trial runs go through ``launch``
    (a Hydra launcher's ``launch``), so each trial is an ordinary ``train.py`` job."""

    def __init__(
        self,
        study: optuna.Study,
        storage: BaseStorage,
        space: SearchSpace,
        launch: Launch,
        budget: Budget,
        context: Callable[[int], TrialContext],
        *,
        config: Any = None,
        reuse_repeats: bool = True,
        poll_s: float = 2.0,
    ) -> None:
        self.study = study
        self.storage = storage
        self.space = space
        self.launch = launch
        self.budget = budget
        self.context = context
        self.config = config
        self.reuse_repeats = reuse_repeats
        self.poll_s = poll_s
        self.name = worker_name()
        self.heartbeat = has_heartbeat(storage)

    def run(self) -> None:
        # Failures count from here: a resumed sweep starts with a clean slate.
        first_number = len(self.study.get_trials(deepcopy=False))
        progress = SweepProgress(self.study, self.budget.n_trials)
        log.info("Worker %s joins study %s", self.name, self.study.study_name)
        while True:
            if self.heartbeat:
                with experimental():  # since Optuna 2.9, still public
                    fail_stale_trials(self.study)  # dead workers' trials: failed, retry queued
            else:  # no heartbeat (journal): this host's dead workers, by their pids
                leases.fail_stale(self.study, self.storage)
            finished = queries.count_finished(self.study)
            running = queries.count(self.study, TrialState.RUNNING)
            if finished >= self.budget.n_trials:
                stopping.stop(self.study, f"{finished} of n_trials={self.budget.n_trials} finished")
                return
            failures = queries.failures_since(self.study, first_number)
            if self.budget.too_many(len(failures)):  # an error, not a stopping rule
                raise SweepFailed(self._too_many_failures(failures))
            if reason := self.budget.rules.reason(self.study, self._max_epochs()):
                stopping.stop(self.study, reason)
                log.info("Worker %s stops: %s", self.name, reason)
                return
            free = self.budget.n_trials - finished - running
            if free <= 0:
                if not self.heartbeat:  # nothing can tell a dead worker's trial from a live one
                    log.info("%d trials are running elsewhere; this worker stops.", running)
                    return
                time.sleep(self.poll_s)  # one of them may still fail and need a retry
                continue
            trials = self._claim(min(self.budget.n_jobs, free))
            if trials:
                self._run(trials, progress)

    def _claim(self, k: int) -> list[optuna.Trial]:
        """Ask for ``k`` trials and keep those within the budget.

        Two workers can ask at the same moment for the last free place; trial numbers are
        assigned atomically by the storage, so the lower number keeps the place and the other
        trial is closed unrun (FAIL, marked surplus; samplers ignore it).
        """
        with warnings.catch_warnings():
            # Optuna warns that heartbeats are meant for study.optimize(); this loop beats itself.
            warnings.filterwarnings("ignore", message=".*[Hh]eartbeat.*")
            trials = [self.study.ask() for _ in range(k)]
        for trial in trials:  # named at once, so a stop or a lease check can tell whose it is
            trial.set_user_attr(stored.WORKER, self.name)
        active = queries.counted_trials(self.study)  # not a warm start's copies
        kept = []
        for trial in trials:
            rank = sum(1 for t in active if t.number <= trial.number)
            if rank <= self.budget.n_trials:
                kept.append(trial)
                continue
            trial.set_user_attr(stored.SURPLUS, True)
            stored.tell(self.study, trial, state=TrialState.FAIL)
        return kept

    def _run(self, trials: list[optuna.Trial], progress: SweepProgress) -> None:
        to_run: list[tuple[optuna.Trial, list[str]]] = []
        for trial in trials:
            sampled = self.space.sample(trial, self.config)
            trial.set_user_attr(stored.OVERRIDES, sampled)
            # A dead worker's trial queued again: done if its run had finished, else it goes
            # on from its last checkpoint.
            resumes = queries.retry_of(queries.trial(self.study, trial.number))
            if (resumes is not None and stored.reuse_outcome(self.study, trial, resumes)) or (
                self.reuse_repeats and stored.reuse_twin(self.study, trial)
            ):
                progress.trial_finished(trial.number)
                continue
            context = self.context(trial.number)
            if resumes is not None:
                context = dataclasses.replace(context, resumes=resumes)
            overrides = [*sampled, *self.space.fixed, context.as_override()]
            to_run.append((trial, overrides))
        if not to_run:
            return
        started = [t for t, _ in to_run]
        with (
            self._beating([trial_id(t) for t in started]),
            handing_over(self.study.study_name, started),
        ):
            returns = self.launch([o for _, o in to_run], to_run[0][0].number)
        with signals.deferred():  # a pruned or failed run keeps no outcome: tell them first
            for (trial, _), job in zip(to_run, returns, strict=True):
                stored.record(self.study, trial, job)
                progress.trial_finished(trial.number)

    def _max_epochs(self) -> int | None:
        """The trials' epoch budget, for predicting a trial's length."""
        return OmegaConf.select(self.config, "trainer.max_epochs") if self.config else None

    @contextmanager
    def _beating(self, trial_ids: list[int]) -> Iterator[None]:
        """Record the running trials' heartbeats while they run (as study.optimize would)."""
        if not self.heartbeat:
            yield
            return
        stop = threading.Event()
        interval = self.storage.get_heartbeat_interval()

        def beat() -> None:
            while True:
                try:
                    for i in trial_ids:
                        self.storage.record_heartbeat(i)
                except Exception as e:  # a storage hiccup: the next beat may get through
                    log.warning("Could not record a heartbeat: %s", redact(str(e)))
                if stop.wait(interval):
                    return

        thread = threading.Thread(target=beat, name="sweeplab-heartbeat", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    def _too_many_failures(self, failures: list[optuna.trial.FrozenTrial]) -> str:
        last = failures[-1]
        return (
            f"Stopping the sweep: {len(failures)} trials failed, more than "
            f"hydra.sweeper.max_failure_rate={self.budget.max_failure_rate} of "
            f"n_trials={self.budget.n_trials} allows. Last failure: trial {last.number}: "
            f"{last.user_attrs[stored.ERROR].rstrip('.')}. Finished trials are kept in the "
            "study; fix the cause (see the trials' logs in the sweep directory), then run the "
            "same command again to resume, or raise hydra.sweeper.max_failure_rate."
        )
