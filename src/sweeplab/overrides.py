"""Hydra override strings: their keys, and values written in Hydra's override grammar."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["format_override", "hydra_value", "override_key"]


def override_key(override: str) -> str:
    """``++model.net.units=5`` -> ``model.net.units``."""
    return override.split("=", 1)[0].lstrip("+~")


def format_override(key: str, value: Any) -> str:
    """``key=value`` in Hydra's override grammar, lists included."""
    if isinstance(value, list | tuple):
        return f"{key}=[{','.join(str(v) for v in value)}]"
    return f"{key}={value}"


def hydra_value(value: Any, *, quoted: bool = False) -> str:
    """``value`` (dicts, lists, booleans, numbers, strings) in Hydra's override grammar;
    ``quoted`` quotes strings, so that URLs and paths with ``:``, ``,`` or quotes survive."""
    if isinstance(value, Mapping):
        items = (f"{k}: {hydra_value(v, quoted=quoted)}" for k, v in value.items())
        return "{" + ", ".join(items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(hydra_value(v, quoted=quoted) for v in value) + "]"
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "null"
    if quoted and isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return str(value)
