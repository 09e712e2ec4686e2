"""What the console leaves out at the default verbosity, in one place.

Each filter names one message of one library, handled by sweeplab already or of no concern to
a user, and applies only inside sweeplab's own calls; no global filter. ``SWEEPLAB_VERBOSE=1``
or ``hydra.verbose=true`` brings everything back, and a run's ``train.log`` keeps Lightning's
lines either way.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

__all__ = ["VERBOSE_ENV", "known_noise", "launching", "run_console", "trainer_switches", "verbose"]

VERBOSE_ENV = "SWEEPLAB_VERBOSE"

# (message regex, category name, module regex): warnings that say nothing a user can act on.
_NOISE = [
    # SLURM is installed, so Lightning suggests srun; sweeplab's workers start their own jobs.
    (r"The `srun` command is available", "PossibleUserWarning", r"lightning_fabric\.plugins"),
    # Lightning's own pytree helper uses a torch class torch deprecated; nothing to change here.
    (r"`isinstance\(treespec, LeafSpec\)` is deprecated", "FutureWarning", r"pytorch_lightning"),
    # sweeplab's classifier logs once per epoch, so a short epoch loses no training logs.
    (r"The number of training batches .* logging interval", "PossibleUserWarning", r"pytorch_l"),
    # bf16-mixed only changes the summary's size estimate, which sweeplab does not use.
    (r"Precision .* is not supported by the model summary", "UserWarning", r"pytorch_lightning"),
    # report.py flips a maximised objective before ranking importances, as PED-ANOVA asks.
    # (Optuna 3.12+ names the caller, report.py, as the warning's module.)
    (r"PedAnovaImportanceEvaluator computes .* low `target`", "UserWarning", r"optuna|sweeplab"),
]
# Lightning's loggers, which write to stderr themselves (not through the root logger).
_LIGHTNING_LOGGERS = ("pytorch_lightning", "lightning_fabric")
# Hydra's launcher logs every job's full overrides; a sweep prints one line per trial instead.
_LAUNCHER_LOGGERS = ("hydra._internal.core_plugins.basic_launcher", "hydra_plugins")


def verbose() -> bool:
    """Whether the user asked for every library's output (``SWEEPLAB_VERBOSE`` or Hydra's
    ``hydra.verbose``)."""
    if os.environ.get(VERBOSE_ENV, "").lower() not in ("", "0", "false", "no"):
        return True
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.initialized() and bool(HydraConfig.get().verbose)


@contextmanager
def known_noise() -> Iterator[None]:
    """Ignore the warnings listed in ``_NOISE`` (only them, only inside this block)."""
    with warnings.catch_warnings():
        if not verbose():
            for message, category, module in _NOISE:
                warnings.filterwarnings("ignore", message, _category(category), module)
        yield


def _category(name: str) -> type[Warning]:
    if name == "PossibleUserWarning":
        from lightning_fabric.utilities.warnings import PossibleUserWarning

        return PossibleUserWarning
    return {"FutureWarning": FutureWarning, "UserWarning": UserWarning}[name]


@contextmanager
def run_console(trial: bool) -> Iterator[None]:
    """Around a run: Lightning's information lines (hardware, tips, checkpoint restores) go
    to the run's log file only; a sweep trial's own log lines too, since the sweep prints one
    line per trial. Warnings and errors still reach the console."""
    with ExitStack() as stack:
        stack.enter_context(known_noise())
        if not verbose():
            files = [h for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)]
            consoles = [h for h in logging.getLogger().handlers if h not in files]
            for name in _LIGHTNING_LOGGERS:
                logger = logging.getLogger(name)
                stack.enter_context(_handlers_at(logger.handlers, logging.WARNING))
                stack.enter_context(_added(logger, files))
            if trial:
                stack.enter_context(_handlers_at(consoles, logging.WARNING))
        yield


@contextmanager
def launching() -> Iterator[None]:
    """Around a launcher's ``launch``: its per-job lines at debug level, unless verbose."""
    with ExitStack() as stack:
        if not verbose():
            for name in _LAUNCHER_LOGGERS:
                stack.enter_context(_level(logging.getLogger(name), logging.WARNING))
        yield


def trainer_switches(
    trainer_cfg: Any, callbacks: list[Any], trial: bool
) -> tuple[list[Any], dict[str, Any]]:
    """The callbacks and extra Trainer arguments of a short console: no model summary (the
    results table has the parameter count), and no progress bar in a sweep trial, which
    prints one line when it ends. A value the trainer config sets itself wins."""
    from pytorch_lightning.callbacks import ProgressBar

    if verbose():
        return callbacks, {}
    switches = {"enable_model_summary": False}
    if trial and "enable_progress_bar" not in trainer_cfg:
        switches["enable_progress_bar"] = False
        callbacks = [c for c in callbacks if not isinstance(c, ProgressBar)]
    return callbacks, {k: v for k, v in switches.items() if k not in trainer_cfg}


@contextmanager
def _handlers_at(handlers: list[logging.Handler], level: int) -> Iterator[None]:
    before = [h.level for h in handlers]
    for h in handlers:
        h.setLevel(max(h.level, level))
    try:
        yield
    finally:
        for h, old in zip(handlers, before, strict=True):
            h.setLevel(old)


@contextmanager
def _added(logger: logging.Logger, handlers: list[logging.Handler]) -> Iterator[None]:
    new = [h for h in handlers if h not in logger.handlers]
    for h in new:
        logger.addHandler(h)
    try:
        yield
    finally:
        for h in new:
            logger.removeHandler(h)


@contextmanager
def _level(logger: logging.Logger, level: int) -> Iterator[None]:
    before = logger.level
    logger.setLevel(max(before, level))
    try:
        yield
    finally:
        logger.setLevel(before)
