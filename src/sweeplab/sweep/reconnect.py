"""A database server that restarts under a running sweep: storage calls wait for it.

A PostgreSQL or MySQL server restarted (an upgrade, a failover, a crash) cuts every open
connection; SQLAlchemy then raises ``OperationalError`` (Optuna wraps it in
``StorageInternalError``) from whatever call meets the gap: a worker's ask or tell, a trial's
per-epoch report, a heartbeat, the command's progress read. :class:`ReconnectingRDBStorage`
retries each storage call that lost its connection, with growing pauses, for at most
:data:`RECONNECT_WAIT_S` in all; ``pool_pre_ping`` (storage.py) makes the retry open a fresh
connection instead of reusing a dead one. One storage call is one transaction, which the
server either committed or rolled back when it cut the connection, so a retried call does
not apply twice (but for a commit whose reply alone was lost, which Optuna's own checks then
refuse).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

import sqlalchemy
from optuna.storages import RDBStorage

from sweeplab.compat.optuna import rdb_database_calls
from sweeplab.errors import SweeplabError
from sweeplab.redaction import redact

__all__ = [
    "RECONNECT_WAIT_S",
    "ReconnectingRDBStorage",
    "StorageUnreachable",
    "lost_connection",
    "retrying",
]

log = logging.getLogger(__name__)

RECONNECT_WAIT_S = 120.0  # longest total wait for the server, per call: a restart, not an outage
FIRST_PAUSE_S = 0.5  # then doubled after every try, up to MAX_PAUSE_S
MAX_PAUSE_S = 8.0

T = TypeVar("T")


class StorageUnreachable(SweeplabError):
    """The study storage's server stayed unreachable longer than the sweep waits for it."""


def lost_connection(error: BaseException) -> sqlalchemy.exc.DBAPIError | None:
    """The SQLAlchemy error behind ``error`` if the database connection failed (refused, cut,
    timed out); ``None`` for any other error, which a retry would not cure, and for an inner
    call that gave up waiting already."""
    if isinstance(error, StorageUnreachable):
        return None
    for e in (error, error.__cause__):
        if isinstance(e, sqlalchemy.exc.OperationalError) or (
            isinstance(e, sqlalchemy.exc.DBAPIError) and e.connection_invalidated
        ):
            return e
    return None


def retrying(call: Callable[[], T], what: str, url: str, wait_s: float = RECONNECT_WAIT_S) -> T:
    """``call()``, tried again with growing pauses while its database connection fails, for at
    most ``wait_s`` seconds; then :class:`StorageUnreachable`, one paragraph. ``what`` and
    ``url`` (redacted here) name the call and the storage in the log lines and the error.

    A storage method that calls another (``create_new_study`` reads the id it wrote) retries
    each inner call by itself: the outer call sees only its own transaction fail, so a retry
    never repeats a transaction that was committed."""
    waited, pause, tries = 0.0, FIRST_PAUSE_S, 0
    while True:
        tries += 1
        try:
            result = call()
        except Exception as e:
            lost = lost_connection(e)
            if lost is None:
                raise
            reason = _reason(lost)
            if waited + pause > wait_s:
                raise StorageUnreachable(_unreachable(url, what, reason, waited, tries)) from e
            log.warning(
                "The study storage %s did not answer %s (%s); retrying in %.1f s (waited "
                "%.0f s of at most %.0f s).",
                redact(url),
                what,
                reason,
                pause,
                waited,
                wait_s,
            )
            time.sleep(pause)
            waited, pause = waited + pause, min(2 * pause, MAX_PAUSE_S)
            continue
        if tries > 1:
            log.warning("The study storage %s answers again after %.1f s.", redact(url), waited)
        return result


def _reason(error: sqlalchemy.exc.DBAPIError) -> str:
    """The driver's own first line (e.g. "connection refused"), password masked."""
    return redact(str(error.orig or error).strip().splitlines()[0] or type(error.orig).__name__)


def _unreachable(url: str, what: str, reason: str, waited: float, tries: int) -> str:
    return (
        f"The study storage {redact(url)} stopped answering ({reason}) during {what}, and did "
        f"not come back within {waited:.0f} s ({tries} tries). Trials finished before are kept "
        "in it. Check that the database server runs and accepts connections from this machine, "
        "then run the same command again to resume the sweep."
    )


class ReconnectingRDBStorage(RDBStorage):
    """Optuna's ``RDBStorage`` whose every database call waits for a restarting server (see
    the module's docstring) instead of failing the worker, trial or command that made it."""


def _reconnecting(name: str) -> Callable[..., Any]:
    method = getattr(RDBStorage, name)

    @functools.wraps(method)
    def call(self: ReconnectingRDBStorage, *args: Any, **kwargs: Any) -> Any:
        return retrying(lambda: method(self, *args, **kwargs), name, self.url)

    return call


# Wrapped by name, not one override each: every call Optuna makes, public or private (its
# cache calls private ones), goes through the same retry.
for _name in rdb_database_calls():
    setattr(ReconnectingRDBStorage, _name, _reconnecting(_name))
