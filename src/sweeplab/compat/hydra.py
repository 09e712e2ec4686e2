"""The Hydra 1.4 pre-release features sweeplab relies on, in one place.

hydra-core is pinned to exactly 1.4.0rc3 (pyproject.toml), which adds two features that a
final 1.4 may still change: an execution whitelist (``hydra.main(execution_whitelist=...)``
and ``instantiate(..., _execution_whitelist_=...)``: targets outside it warn now and fail in
1.5) and plugin discovery through the ``hydra.plugins`` entry-point group, which registers
sweeplab's sweeper from pyproject.toml without a ``hydra_plugins`` package. Nothing else in
sweeplab names them; tests/test_compat.py fails with :func:`missing_features` when the
installed Hydra lacks one.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import hydra
from hydra.types import TaskFunction

__all__ = ["PLUGIN_ENTRY_POINT_GROUP", "instantiate", "main", "missing_features"]

PLUGIN_ENTRY_POINT_GROUP = "hydra.plugins"  # pyproject.toml: [project.entry-points."hydra.plugins"]


def main(
    config_path: str, config_name: str, trusted: Sequence[str]
) -> Callable[[TaskFunction], Any]:
    """``@hydra.main`` whose ``instantiate`` calls may build only ``trusted`` targets."""
    return hydra.main(
        config_path=config_path, config_name=config_name, execution_whitelist=list(trusted)
    )


def instantiate(node: Any, trusted: Sequence[str], **kwargs: Any) -> Any:
    """``hydra.utils.instantiate`` limited to ``trusted`` targets (fnmatch patterns)."""
    return hydra.utils.instantiate(node, _execution_whitelist_=tuple(trusted), **kwargs)


def missing_features() -> list[str]:
    """The pre-release features above that the installed Hydra lacks; empty when all are
    there."""
    from hydra.core import plugins

    missing = []
    if "execution_whitelist" not in inspect.signature(hydra.main).parameters:
        missing.append("hydra.main(execution_whitelist=...)")
    if "_execution_whitelist_" not in inspect.signature(hydra.utils.instantiate).parameters:
        missing.append("hydra.utils.instantiate(_execution_whitelist_=...)")
    if PLUGIN_ENTRY_POINT_GROUP not in inspect.getsource(plugins):
        missing.append(f"plugin discovery through the {PLUGIN_ENTRY_POINT_GROUP!r} entry points")
    return missing
