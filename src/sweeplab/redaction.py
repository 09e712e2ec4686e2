"""Keeping passwords in storage URLs out of everything sweeplab writes: logs, reports, error
messages and the W&B config."""

from __future__ import annotations

import re

__all__ = ["MASK", "redact"]

MASK = "***"  # what a password becomes
# scheme://user:password@host -> scheme://user:***@host
_PASSWORD_IN_URL = re.compile(r"([a-zA-Z][\w+.-]*://[^:/@\s]*:)[^@\s]+@")


def redact(text: str) -> str:
    """``text`` with the password of every URL in it replaced by :data:`MASK`."""
    return _PASSWORD_IN_URL.sub(rf"\1{MASK}@", text)
