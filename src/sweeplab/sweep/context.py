"""The one contract between the sweeper and a trial: :class:`TrialContext`.

The sweep worker hands each trial its context through one config node, ``sweep_trial``
(:data:`NODE`), as a single override; the training run reads it with
:meth:`TrialContext.from_config` and is an ordinary run without it. Nothing else crosses the
seam: the run does not read the sweeper's settings, match its ``_target_`` or look at the
environment.

A trial that runs in the worker's own process (Hydra's basic launcher) reports to the live
trial the worker asked for (:func:`handing_over`); one that runs in another process (a
parallel launcher) reopens it from the storage. A storage password is never written into the
context, which Hydra saves with the trial: the context holds the URL with the password
masked, and the password comes from ``SWEEPLAB_STORAGE``, where the README tells users to
keep it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from omegaconf import DictConfig, OmegaConf

from sweeplab.errors import ConfigError
from sweeplab.overrides import hydra_value
from sweeplab.redaction import MASK, redact

if TYPE_CHECKING:
    import optuna

__all__ = ["NODE", "STORAGE_ENV", "TrialContext", "handing_over", "is_pruned"]

NODE = "sweep_trial"  # the config node that carries the context; null outside a sweep
STORAGE_ENV = "SWEEPLAB_STORAGE"  # where a storage password may live (README: Scaling out)
UserErrors = Literal["raise", "exit"]

# Trials asked by a worker in this process, by (study name, trial number), while they run.
_live_trials: dict[tuple[str, int], optuna.Trial] = {}


@dataclass(frozen=True)
class TrialContext:
    """What a trial needs to know about the sweep that runs it."""

    study_name: str
    number: int  # the trial's number in the study
    storage: str  # the study's storage URL, password masked
    pruner: Mapping[str, Any] | None = field(default=None)  # the pruner's config, if any
    # "raise": a user error fails the trial and the sweep goes on; "exit": one paragraph, exit 1
    user_errors: UserErrors = "raise"

    def __post_init__(self) -> None:
        if not self.study_name or not isinstance(self.study_name, str):
            raise ConfigError(f"`{NODE}.study_name`={self.study_name!r} is invalid: a study name.")
        if not isinstance(self.number, int) or isinstance(self.number, bool) or self.number < 0:
            raise ConfigError(f"`{NODE}.number`={self.number!r} is invalid: a trial number >= 0.")
        if self.user_errors not in ("raise", "exit"):
            raise ConfigError(
                f"`{NODE}.user_errors`={self.user_errors!r} is invalid: use raise or exit."
            )

    @classmethod
    def from_config(cls, cfg: DictConfig) -> TrialContext | None:
        """The context of a run that is a sweep trial; ``None`` for any other run."""
        node = cfg.get(NODE)
        if node is None:
            return None
        plain = OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node
        if not isinstance(plain, dict):
            raise ConfigError(f"`{NODE}`={plain!r} is invalid: it is set by sweeplab's sweeper.")
        try:
            return cls(**plain)
        except TypeError as e:
            raise ConfigError(
                f"`{NODE}` is invalid ({e}): it is set by sweeplab's sweeper for each trial; "
                "leave it out of configs and command lines."
            ) from None

    def as_override(self) -> str:
        """The context as one Hydra override of :data:`NODE`, for the trial's launch."""
        return f"++{NODE}={hydra_value(asdict(self), quoted=True)}"

    def trial(self) -> optuna.Trial:
        """The live Optuna trial this run reports to."""
        live = _live_trials.get((self.study_name, self.number))
        if live is not None:
            return live
        import optuna

        from sweeplab.compat.optuna import trial_by_number
        from sweeplab.sweep.algorithms import build_pruner
        from sweeplab.sweep.storage import open_storage

        study = optuna.load_study(
            study_name=self.study_name,
            storage=open_storage(self._storage_url()),
            pruner=build_pruner(OmegaConf.create(dict(self.pruner)) if self.pruner else None),
        )
        return trial_by_number(study, self.number)

    def _storage_url(self) -> str:
        if MASK not in self.storage:
            return self.storage
        secret = os.environ.get(STORAGE_ENV, "")
        if redact(secret) != self.storage:
            raise ConfigError(
                f"Trial {self.number} runs in a process of its own and must reopen the study "
                f"storage {self.storage}, whose password is not written anywhere: export it as "
                f"{STORAGE_ENV}=<the URL with its password> (or keep the password in ~/.pgpass "
                "and give the URL without it)."
            )
        return secret


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
