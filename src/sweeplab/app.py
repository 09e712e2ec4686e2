"""The entry points, in one place: ``python train.py`` / ``eval.py`` in a checkout, ``sweeplab
train`` / ``eval`` when installed, and ``sweeplab.run`` / ``sweeplab.run_sweep`` from Python.

Each reads its arguments (a W&B sweep agent's checked, ``best_of=`` expanded), finds the
user's repository (``sweeplab.user_repo``: installed commands only, a checkout is sweeplab's
own), builds the trust list and hands Hydra sweeplab's configs with the user's on the search
path. Torch and Lightning are imported here, with the garbage collector off, not by
``import sweeplab``.
"""

from __future__ import annotations

import argparse
import importlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sweeplab import process
from sweeplab.errors import USER_ERRORS, SweeplabError, exit_with, user_error

__all__ = ["evaluate", "own_configs", "run", "run_sweep", "train"]


def own_configs() -> Path:
    """sweeplab's configs: inside the installed package (the build copies the top-level
    ``configs/`` there, see pyproject.toml), or a development checkout's ``configs/``."""
    packaged = Path(__file__).parent / "configs"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[2] / "configs"


def train(argv: Sequence[str], checkout: Path | None = None) -> None:
    """``sweeplab train ARGS`` (or ``python train.py ARGS`` in ``checkout``): one run, or a
    sweep with ``-m``."""
    training = _heavy("sweeplab.train")
    try:
        argv = _train_arguments(argv)
    except SweeplabError as e:
        exit_with(e)
    _hydra(training.main, argv, "train", checkout)


def evaluate(argv: Sequence[str], checkout: Path | None = None) -> None:
    """``sweeplab eval ckpt_path=...`` (or ``python eval.py ...`` in ``checkout``)."""
    _hydra(_heavy("sweeplab.evaluate").main, argv, "eval", checkout)


def run(overrides: Sequence[str] = (), config_dir: str | Path | None = None) -> dict[str, Any]:
    """Train once with ``overrides``, as ``sweeplab train`` does from the current directory
    (or with ``config_dir`` as ``--config-dir``); return the run's record (``metrics.json``).

    A config or data error is raised (a ``SweeplabError``) instead of ending the process.
    """
    training = _heavy("sweeplab.train")
    outcome: dict[str, Any] = {}

    def task(cfg: Any) -> None:
        try:
            outcome["record"] = training.run(cfg)
        except Exception as e:  # raised again below, past Hydra's exit on a job's error
            outcome["error"] = e

    _hydra(task, [*_config_dir_args(config_dir), *_train_arguments(overrides)], "train", None)
    error = outcome.get("error")
    if isinstance(error, USER_ERRORS):
        raise user_error(error) from None
    if error is not None:
        raise error
    return outcome["record"]


def run_sweep(overrides: Sequence[str] = (), config_dir: str | Path | None = None) -> None:
    """Run the sweep that ``sweeplab train -m overrides`` runs (``hparams_search=...``). Its
    results are in ``logs/sweeps/<name>``: :func:`sweeplab.load_best` reads them."""
    _hydra(
        _heavy("sweeplab.train").main,
        ["-m", *_config_dir_args(config_dir), *_train_arguments(overrides)],
        "train",
        None,
    )


def _heavy(module: str) -> Any:
    """Import ``module`` (torch, Lightning, Hydra) as every entry point does: plots drawn off
    screen, the imports made with the garbage collector off and then frozen."""
    process.plots_off_screen()
    with process.imports_without_gc():
        return importlib.import_module(module)


def _config_dir_args(config_dir: str | Path | None) -> list[str]:
    return [] if config_dir is None else ["--config-dir", str(config_dir)]


def _train_arguments(argv: Sequence[str]) -> list[str]:
    """``argv`` with a W&B sweep agent's arguments checked and ``best_of=`` expanded."""
    from sweeplab.sweep.best import expand_best_of
    from sweeplab.sweep.recorded import WANDB_SWEEP_FIX, check_plain
    from sweeplab.trust import is_trusted, trusted_targets

    if os.environ.get("WANDB_SWEEP_ID"):  # arguments written by whoever edits the sweep
        allowed = trusted_targets()
        check_plain(
            list(argv),
            "the W&B sweep's arguments",
            WANDB_SWEEP_FIX,
            trusted=lambda target: is_trusted(target, allowed),
        )
    return expand_best_of(list(argv))


def _hydra(
    task: Callable[[Any], Any], argv: Sequence[str], name: str, checkout: Path | None
) -> None:
    """Run ``task`` under Hydra with config ``name``: a checkout's configs, or sweeplab's with
    the user's repository on top."""
    from sweeplab.compat import hydra as hydra_compat
    from sweeplab.trust import trusted_targets

    args = hydra_compat.parse_args(argv)
    try:
        config_dir = _enter(args, checkout)
        trusted = trusted_targets()
    except SweeplabError as e:
        exit_with(e)
    hydra_compat.run(task, args, config_dir, name, trusted, job_name=name)


def _enter(args: argparse.Namespace, checkout: Path | None) -> Path:
    """Where this command's outputs go and its configs are; the user's repository joins the
    search path as ``--config-dir``."""
    from sweeplab import user_repo

    if checkout is not None:  # paths in configs/ are relative to the checkout, from anywhere
        os.environ.setdefault(user_repo.ROOT_ENV, str(checkout))
        return checkout / "configs"
    repo = user_repo.find(args.config_dir, Path.cwd())
    if repo is None:
        os.environ.setdefault(user_repo.ROOT_ENV, str(Path.cwd()))
    else:
        args.config_dir = str(repo.config_dir)
        user_repo.enter(repo)
    return own_configs()
