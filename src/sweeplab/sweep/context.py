"""The one contract between the sweeper and a trial: :class:`TrialContext`.

The sweep worker hands each trial its context through one config node, ``sweep_trial``
(:data:`NODE`), as a single override; the training run reads it with
:meth:`TrialContext.from_config` and is an ordinary run without it. Nothing else crosses the
seam: the run does not read the sweeper's settings or match its ``_target_``.

A trial that runs in the worker's own process (Hydra's basic launcher) reports to the live
trial the worker asked for (:func:`handing_over`); one that runs in another process (a
parallel launcher) reopens it from the storage. Hydra saves the context with the trial, so a
storage URL that carries a password is never put in it: the context names
``SWEEPLAB_STORAGE`` instead, which the worker sets for the processes it launches
(:func:`share_storage`), and which is where the README tells users to keep such a URL.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Literal

from omegaconf import DictConfig, OmegaConf

from sweeplab.errors import ConfigError
from sweeplab.overrides import hydra_value
from sweeplab.redaction import has_secret, redact
from sweeplab.values import is_number

if TYPE_CHECKING:
    import optuna

__all__ = [
    "NODE",
    "STORAGE_ENV",
    "STORAGE_FROM_ENV",
    "TrialContext",
    "handing_over",
    "is_pruned",
    "share_storage",
]

NODE = "sweep_trial"  # the config node that carries the context; null outside a sweep
STORAGE_ENV = "SWEEPLAB_STORAGE"  # a storage URL kept out of configs (README: Scaling out)
STORAGE_FROM_ENV = f"env:{STORAGE_ENV}"  # the context's storage when the URL has a password
UserErrors = Literal["raise", "exit"]

# Trials asked by a worker in this process, by (study name, trial number), while they run.
_live_trials: dict[tuple[str, int], optuna.Trial] = {}


@dataclass(frozen=True)
class TrialContext:
    """What a trial needs to know about the sweep that runs it."""

    study_name: str
    number: int  # the trial's number in the study
    storage: str  # the study's storage URL, or STORAGE_FROM_ENV
    pruner: Mapping[str, Any] | None = None  # the pruner's config; None: no pruning
    # raise: a user error fails the trial and the sweep goes on; exit: one paragraph, exit 1
    user_errors: UserErrors = "raise"
    deadline: float | None = None  # the study's budget ends then (UNIX time): stop at an epoch
    timeout_s: float | None = None  # hydra.sweeper.trial_timeout: fail the trial past it
    # the failed trial (a dead worker's) this one retries: go on from its last.ckpt
    resumes: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.study_name, str) or not self.study_name:
            self._refuse("study_name", "a study name")
        if not isinstance(self.number, int) or isinstance(self.number, bool) or self.number < 0:
            self._refuse("number", "a trial number (0 or more)")
        if not isinstance(self.storage, str) or not self.storage:
            self._refuse("storage", "an Optuna storage URL")
        if self.pruner is not None and not isinstance(self.pruner, Mapping):
            self._refuse("pruner", "a pruner's config, or null")
        if self.user_errors not in ("raise", "exit"):
            self._refuse("user_errors", "raise or exit")
        for key in ("deadline", "timeout_s"):
            if (value := getattr(self, key)) is not None and not is_number(value):
                self._refuse(key, "a number of seconds, or null")
        resumes = self.resumes
        if resumes is not None and (
            not isinstance(resumes, int)
            or isinstance(resumes, bool)
            or not 0 <= resumes < self.number
        ):
            self._refuse("resumes", "the number of an earlier trial that this one retries, or null")

    def _refuse(self, key: str, expected: str) -> None:
        raise ConfigError(
            f"`{NODE}.{key}`={getattr(self, key)!r} is invalid: give {expected}. sweeplab's "
            f"sweeper sets {NODE} for each trial; leave it out of configs and command lines."
        )

    @classmethod
    def for_trial(
        cls, study_name: str, number: int, storage: str, pruner: Mapping[str, Any] | None
    ) -> TrialContext:
        """The context the worker hands trial ``number``, with no password in it."""
        shown = STORAGE_FROM_ENV if has_secret(storage) else storage
        return cls(study_name, number, shown, pruner)

    @classmethod
    def from_config(cls, cfg: DictConfig) -> TrialContext | None:
        """The context of a run that is a sweep trial; ``None`` for any other run."""
        node = cfg.get(NODE)
        if node is None:
            return None
        plain = OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node
        known = {f.name for f in fields(cls)}
        if not isinstance(plain, dict) or not {"study_name", "number", "storage"} <= set(plain):
            raise ConfigError(
                f"`{NODE}`={plain!r} is invalid: it needs study_name, number and storage. "
                f"sweeplab's sweeper sets {NODE} for each trial; leave it out of configs and "
                "command lines."
            )
        if unknown := sorted(set(plain) - known):
            raise ConfigError(
                f"`{NODE}` has no key {', '.join(unknown)}: its keys are "
                f"{', '.join(sorted(known))}, set by sweeplab's sweeper for each trial."
            )
        return cls(**plain)

    def as_override(self) -> str:
        """The context as one Hydra override of :data:`NODE` (defaults left out)."""
        values = {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if getattr(self, f.name) != f.default
        }
        return f"++{NODE}={hydra_value(values, quoted=True)}"

    def trial(self) -> optuna.Trial:
        """The live Optuna trial this run reports to."""
        live = _live_trials.get((self.study_name, self.number))
        if live is not None:
            return live
        import optuna

        from sweeplab.compat.optuna import trial_by_number
        from sweeplab.sweep.algorithms import build_pruner
        from sweeplab.sweep.storage import open_storage

        config = OmegaConf.create(dict(self.pruner)) if self.pruner else None
        pruner = build_pruner(config, key=f"{NODE}.pruner")
        storage = open_storage(self._storage_url())
        try:
            study = optuna.load_study(study_name=self.study_name, storage=storage, pruner=pruner)
            return trial_by_number(study, self.number)
        except (KeyError, ValueError):  # no such study, or no such trial in it
            raise ConfigError(
                f"`{NODE}` names trial {self.number} of study {self.study_name!r} in "
                f"{redact(self._storage_url())}, which does not hold it. sweeplab's sweeper "
                f"sets {NODE} for each trial; to rerun a trial, leave {NODE} out."
            ) from None

    def _storage_url(self) -> str:
        if self.storage != STORAGE_FROM_ENV:
            return self.storage
        url = os.environ.get(STORAGE_ENV)
        if not url:
            raise ConfigError(
                f"Trial {self.number} runs in a process of its own and must reopen the study "
                f"storage, whose URL holds a password and is therefore not written anywhere: "
                f"give the URL in the environment variable {STORAGE_ENV}."
            )
        return url


def share_storage(url: str) -> None:
    """Let the trials this process launches in other processes reopen a storage whose URL
    holds a password, through the environment they inherit rather than a written config."""
    if has_secret(url):
        os.environ[STORAGE_ENV] = url


@contextmanager
def handing_over(study_name: str, trials: list[optuna.Trial]) -> Iterator[None]:
    """Make ``trials`` reachable by runs in this process while they run."""
    keys = [(study_name, t.number) for t in trials]
    _live_trials.update(zip(keys, trials, strict=True))
    try:
        yield
    finally:
        for key in keys:
            _live_trials.pop(key, None)


def is_pruned(error: BaseException) -> bool:
    """Whether a run ended because the sweep's pruner stopped it."""
    import optuna

    return isinstance(error, optuna.TrialPruned)
