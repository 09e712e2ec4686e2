"""Keeping passwords in storage URLs out of everything sweeplab writes: logs, reports, error
messages and the W&B config."""

from __future__ import annotations

import re

__all__ = ["MASK", "has_secret", "redact"]

MASK = "***"  # what a password becomes
# scheme://user:password@host -> scheme://user:***@host
_PASSWORD_IN_URL = re.compile(r"([a-zA-Z][\w+.-]*://[^:/@\s]*:)[^@\s]+@")
# ...?password=secret (libpq and SQLAlchemy take a password as a query parameter too)
_PASSWORD_IN_QUERY = re.compile(r"([?&](?:password|passwd|pwd|sslpassword)=)[^&\s]+", re.I)


def redact(text: str) -> str:
    """``text`` with the password of every URL in it replaced by :data:`MASK`."""
    return _PASSWORD_IN_QUERY.sub(rf"\1{MASK}", _PASSWORD_IN_URL.sub(rf"\1{MASK}@", text))


def has_secret(url: str) -> bool:
    """Whether ``url`` carries a password (which must then never be written)."""
    return redact(url) != url
