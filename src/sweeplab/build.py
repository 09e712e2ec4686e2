"""Turning config nodes into objects, with errors that name the config key.

Everything a run needs is instantiated before training starts, so a bad value fails in
seconds with one paragraph rather than after an epoch with a traceback.
"""

from __future__ import annotations

from typing import Any

from hydra.errors import InstantiationException
from omegaconf import DictConfig, OmegaConf

from sweeplab.compat import hydra as hydra_compat
from sweeplab.errors import ConfigError, SweeplabError
from sweeplab.trust import check_trusted, trusted_targets

__all__ = ["instantiate", "instantiate_group", "to_plain"]


def instantiate(node: Any, key: str, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate(node)`` with errors that name the failing config key.

    Nested ``_target_`` nodes are built first, one by one, so that a bad value in
    ``model.net`` is reported as ``model.net`` rather than as ``model``.
    """
    if isinstance(node, DictConfig):
        for name, child in node.items():
            if isinstance(child, DictConfig) and "_target_" in child and name not in kwargs:
                kwargs[str(name)] = instantiate(child, f"{key}.{name}")
    target = node.get("_target_") if isinstance(node, DictConfig) else None
    allowed = trusted_targets()
    if isinstance(target, str):
        check_trusted(target, f"{key}._target_", allowed)
    try:
        return hydra_compat.instantiate(node, allowed, **kwargs)
    except SweeplabError:
        raise
    except Exception as e:  # building a configured object: its config is the cause
        reason = (
            str(e).strip()
            if isinstance(e, InstantiationException | ValueError)
            else (f"{type(e).__name__}: {e}")
        )
        raise ConfigError(
            f"Invalid config at `{key}` (target {target}): {reason} Fix the value in configs/ "
            f"or override it on the command line, e.g. {key}.<name>=<value>."
        ) from None


def instantiate_group(group: DictConfig | None, key: str) -> list[Any]:
    """Instantiate every entry of a group like ``callbacks`` or ``logger``; null entries
    are switched off, so ``callbacks.lr_monitor=null`` drops one."""
    if not group:
        return []
    return [
        instantiate(node, f"{key}.{name}")
        for name, node in group.items()
        if node is not None and "_target_" in node
    ]


def to_plain(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config as plain Python containers."""
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
