"""Hydra override strings: their keys, and values written in Hydra's override grammar."""

from __future__ import annotations

import re
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
        return _quoted(value)
    return str(value)


def _quoted(text: str) -> str:
    """``text`` as a single-quoted Hydra string that reads back as ``text``: a quote and the
    backslashes before it (or before the closing quote) are escaped, and ``${`` too, so that
    OmegaConf takes it literally rather than as an interpolation."""
    text = text.replace("${", "\\${")
    text = re.sub(r"(\\*)'", lambda m: m.group(1) * 2 + "\\'", text)
    text = re.sub(r"(\\+)$", lambda m: m.group(1) * 2, text)
    return f"'{text}'"
