"""Turning config nodes into objects, with errors that name the config key.

Everything a run needs is instantiated before training starts, so a bad value fails in
seconds with one paragraph rather than after an epoch with a traceback.
"""

from __future__ import annotations

import inspect
import os
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import get_object
from omegaconf import DictConfig, ListConfig, OmegaConf

from sweeplab.compat import hydra as hydra_compat
from sweeplab.errors import ConfigError, SweeplabError
from sweeplab.trust import check_trusted, trusted_targets
from sweeplab.values import is_int, is_number

__all__ = ["instantiate", "instantiate_group", "one_line", "to_plain"]


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
    if not isinstance(target, str) or not all(part.isidentifier() for part in target.split(".")):
        raise ConfigError(
            f"`{key}._target_`={target!r} is invalid: name the Python class or function that "
            f"{key} builds, as configs/ do "
            f"(choose it with {key.split('.')[0]}=...)."
        )
    allowed = trusted_targets()
    check_trusted(target, f"{key}._target_", allowed)
    try:
        return hydra_compat.instantiate(node, allowed, **kwargs)
    except SweeplabError:
        raise
    except Exception as e:  # building a configured object: its config is the cause
        if not isinstance(e.__cause__ or e, ValueError):  # else the target judged it, in words
            _check_arguments(node, key, target, set(kwargs))
        reason = one_line(
            str(e)
            if isinstance(e, InstantiationException | ValueError)
            else f"{type(e).__name__}: {e}"
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
    if not isinstance(group, DictConfig):
        raise ConfigError(f"`{key}`={group!r} is invalid: give its entries as name: settings.")
    built = []
    for name, node in group.items():
        if node is not None and not isinstance(node, DictConfig):
            raise ConfigError(
                f"`{key}.{name}`={node!r} is invalid: give its settings as key: value pairs, or "
                f"null to drop it ({key}.{name}=null)."
            )
        if node is not None and "_target_" in node:
            built.append(instantiate(node, f"{key}.{name}"))
    return built


def one_line(text: str) -> str:
    """A message from a library as part of one paragraph: its lines joined, spaces kept
    single."""
    return " ".join(text.split())


def _check_arguments(node: DictConfig, key: str, target: str, given: set[str]) -> None:
    """After the target failed: a value of a kind its signature does not take (a path given
    ``true``, a shape given a word) is named by key, which the target's own error may not."""
    hints = _parameter_types(target)
    for name, value in node.items():
        name = str(name)
        if name in given or name.startswith("_") or name not in hints:
            continue
        if _fits(value, hints[name]) is False:
            shown = str(hints[name]).replace("typing.", "").replace("NoneType", "None")
            raise ConfigError(
                f"`{key}.{name}`={value!r} is invalid: {target} takes {name}: {shown}. Fix the "
                f"value in configs/ or on the command line ({key}.{name}=...)."
            )


def _parameter_types(target: str) -> dict[str, Any]:
    """The declared types of the target's parameters; none when they cannot be read (then
    the target itself judges its arguments)."""
    try:
        built = get_object(target)
        function = built.__init__ if inspect.isclass(built) else built
        hints = typing.get_type_hints(function)
        passed_on = any(
            p.kind is p.VAR_KEYWORD for p in inspect.signature(function).parameters.values()
        )
        returned = hints.pop("return", None)
        if passed_on and inspect.isclass(returned):  # a factory's **kwargs go to what it makes
            hints = {**typing.get_type_hints(returned.__init__), **hints}
        return hints
    except Exception:  # a missing or odd target fails in instantiate, with its key
        return {}


def _fits(value: Any, hint: Any) -> bool | None:
    """Whether ``value`` is of type ``hint``; ``None`` when the hint is not a plain kind
    (a class, a callable, Any), which only the target can judge."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union or isinstance(hint, type(int | None)):
        fits = [_fits(value, option) for option in args]
        return True if True in fits else (None if None in fits else False)
    if origin is typing.Literal:
        return value in args
    if hint is type(None):
        return value is None
    kinds = {bool: lambda v: isinstance(v, bool), int: is_int, float: is_number}
    if hint in kinds:
        return kinds[hint](value)
    if hint is str or hint is Path or origin is os.PathLike or hint is os.PathLike:
        return isinstance(value, str)
    if origin in (list, Sequence, tuple) or hint in (list, tuple):
        if not isinstance(value, ListConfig | list | tuple):
            return False
        if origin is tuple or len(args) != 1:  # fixed-length tuples: the target checks
            return True
        return all(_fits(item, args[0]) is not False for item in value)
    return None


def to_plain(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config as plain Python containers."""
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
