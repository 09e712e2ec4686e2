"""The Hydra 1.4 pre-release features sweeplab relies on, in one place.

hydra-core is pinned to exactly 1.4.0rc3 (pyproject.toml), which adds two features that a
final 1.4 may still change: an execution whitelist (``hydra.main(execution_whitelist=...)``
and ``instantiate(..., _execution_whitelist_=...)``: targets outside it warn now and fail in
1.5) and plugin discovery through the ``hydra.plugins`` entry-point group, which registers
sweeplab's sweeper from pyproject.toml without a ``hydra_plugins`` package. :func:`run` does
what ``hydra.main`` does through the same private calls (``_run_hydra`` inside the execution
whitelist's context) with the arguments it is given: those of ``sweeplab train`` and
``sweeplab.run`` are not ``sys.argv``, which a sweep's workers run again as it stands.
Nothing else in sweeplab names them; tests/test_compat.py fails with :func:`missing_features`
when the installed Hydra lacks one.
"""

from __future__ import annotations

import argparse
import inspect
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import hydra
from hydra._internal import execution_policy
from hydra._internal import utils as hydra_internal
from hydra.core.global_hydra import GlobalHydra
from hydra.types import TaskFunction

__all__ = ["PLUGIN_ENTRY_POINT_GROUP", "instantiate", "missing_features", "parse_args", "run"]

PLUGIN_ENTRY_POINT_GROUP = "hydra.plugins"  # pyproject.toml: [project.entry-points."hydra.plugins"]


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Hydra's own command line (``-m``, ``--config-dir``, ``--cfg``, overrides) from ``argv``."""
    return hydra_internal.get_args_parser().parse_intermixed_args(list(argv))


def run(
    task: TaskFunction,
    args: argparse.Namespace,
    config_dir: Path,
    config_name: str,
    trusted: Sequence[str],
    job_name: str,
) -> None:
    """What ``@hydra.main(config_path=config_dir, ...)`` does for ``args``, with ``instantiate``
    limited to ``trusted`` targets; the job (and its log file) is named ``job_name``."""

    def job(cfg: Any) -> Any:
        return task(cfg)

    job.__module__ = job_name  # Hydra names the job after the task function's module
    hydra.version.setbase(hydra.version._UNSPECIFIED_)
    try:
        with execution_policy.execution_whitelist(list(trusted)):
            hydra_internal._run_hydra(
                args=args,
                args_parser=hydra_internal.get_args_parser(),
                task_function=job,
                config_path=str(config_dir),
                config_name=config_name,
            )
    finally:  # a notebook's next run, or its own hydra.initialize(), starts afresh
        GlobalHydra.instance().clear()


def instantiate(node: Any, trusted: Sequence[str], **kwargs: Any) -> Any:
    """``hydra.utils.instantiate`` limited to ``trusted`` targets (fnmatch patterns)."""
    return hydra.utils.instantiate(node, _execution_whitelist_=tuple(trusted), **kwargs)


def missing_features() -> list[str]:
    """The pre-release features above that the installed Hydra lacks; empty when all are
    there."""
    from hydra.core import plugins

    missing = []
    if (
        "task_function"
        not in inspect.signature(getattr(hydra_internal, "_run_hydra", len)).parameters
    ):
        missing.append("hydra._internal.utils._run_hydra(args, args_parser, task_function, ...)")
    if not hasattr(execution_policy, "execution_whitelist"):  # what hydra.main(...) enters
        missing.append("hydra.main(execution_whitelist=...)'s execution_policy context")
    if "_execution_whitelist_" not in inspect.signature(hydra.utils.instantiate).parameters:
        missing.append("hydra.utils.instantiate(_execution_whitelist_=...)")
    if PLUGIN_ENTRY_POINT_GROUP not in inspect.getsource(plugins):
        missing.append(f"plugin discovery through the {PLUGIN_ENTRY_POINT_GROUP!r} entry points")
    return missing
