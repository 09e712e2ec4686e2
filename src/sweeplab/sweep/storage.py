"""Opening a study's storage from the URL a user gives.

An RDB URL (``sqlite:///...``, ``postgresql://user@host/db``) gets Optuna's heartbeats, so a
worker that dies on any machine has its trial failed and retried; ``journal:<path>`` is
Optuna's journal file for a shared filesystem without a database (no heartbeats).
"""

from __future__ import annotations

import logging
import random
import time
from pathlib import Path
from typing import Any

import sqlalchemy
from optuna.storages import (
    BaseStorage,
    JournalStorage,
    RDBStorage,
    RetryHeartbeatStaleTrialCallback,
)
from optuna.storages.journal import JournalFileBackend

from sweeplab.compat.optuna import experimental
from sweeplab.errors import ConfigError
from sweeplab.redaction import redact
from sweeplab.sweep.settings import Heartbeat

__all__ = [
    "DEFAULT_SQLITE_FILE",
    "DRIVERS",
    "JOURNAL_SCHEME",
    "has_heartbeat",
    "is_journal",
    "journal_path",
    "local_file",
    "open_existing_storage",
    "open_storage",
]

log = logging.getLogger(__name__)

JOURNAL_SCHEME = "journal:"
DEFAULT_SQLITE_FILE = "optuna.db"  # in the sweep directory; see configs/hydra/sweeper
DRIVERS = {  # the pip package that provides each URL scheme's database driver
    "postgresql": "psycopg[binary]",
    "postgresql+psycopg": "psycopg[binary]",
    "postgresql+psycopg2": "psycopg2-binary",
    "mysql": "mysqlclient",
    "mysql+pymysql": "pymysql",
}


def is_journal(url: str) -> bool:
    return url.startswith(JOURNAL_SCHEME)


def journal_path(url: str) -> Path:
    """``journal:runs/x.log`` and ``journal:///abs/x.log`` -> the file's path."""
    return Path(url[len(JOURNAL_SCHEME) :].removeprefix("//")).expanduser()


def open_storage(url: str, heartbeat: Heartbeat | None = None) -> BaseStorage:
    """The storage behind ``url``, checked now: a missing driver, an unreachable server or an
    unwritable file fails here with one paragraph, before any trial starts."""
    where = f"hydra.sweeper.storage={redact(url)}"
    if is_journal(url):
        path = journal_path(url)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            return JournalStorage(JournalFileBackend(str(path)))
        except OSError as e:
            raise ConfigError(
                f"Cannot open the journal file of {where}: {e.strerror}. Point it at a "
                "writable file on a filesystem every worker shares, e.g. journal:///shared/"
                "study.log."
            ) from None
    # Several local workers write to one SQLite file: they wait for its lock rather than fail.
    sqlite = url.startswith("sqlite")
    engine_kwargs = {"connect_args": {"timeout": 60}} if sqlite else {"pool_pre_ping": True}
    try:
        return _rdb_storage(url, engine_kwargs, heartbeat)
    except ImportError as e:  # Optuna re-raises the driver's ModuleNotFoundError as this
        scheme = url.split(":", 1)[0]
        missing = getattr(e.__cause__, "name", None) or e.name
        package = DRIVERS.get(scheme, missing or "the driver of " + scheme)
        raise ConfigError(
            f"The database driver for {where} is not installed (no module {missing!r}). "
            f"Install it with `pip install {package}`, or use the default SQLite storage."
        ) from None
    except Exception as e:  # SQLAlchemy's errors: a bad URL, or a server that cannot be reached
        reason = redact(str(getattr(e, "orig", None) or e).strip().splitlines()[0])
        raise ConfigError(
            f"Cannot open the study storage {where}: {reason}. Check the URL (dialect://user@"
            "host:port/database), that the server runs and accepts connections from this "
            "machine, and that the database exists; keep a password out of the command line "
            "with ~/.pgpass or SWEEPLAB_STORAGE (see the README, Scaling out)."
        ) from None


def open_existing_storage(source: str) -> BaseStorage:
    """The storage a finished or running sweep wrote, for reading: an Optuna storage URL, or a
    sweep directory (its default SQLite file). Never creates a database file."""
    if "://" in source or is_journal(source):
        url = source
    else:
        directory = Path(source).expanduser()
        if not directory.is_dir():
            raise ConfigError(
                f"{source} is neither a sweep directory nor an Optuna storage URL. Pass the "
                "directory a sweep wrote (logs/sweeps/<study name>) or a URL such as "
                "sqlite:///logs/sweeps/<study name>/optuna.db or postgresql://user@host/db."
            )
        url = f"sqlite:///{directory / DEFAULT_SQLITE_FILE}"
    existing = local_file(url)
    if existing is not None and not existing.is_file():
        raise ConfigError(
            f"There is no study storage at {existing} ({redact(url)}). Check the path: a "
            f"sweep's default storage is logs/sweeps/<study name>/{DEFAULT_SQLITE_FILE}; a "
            "sweep that ran with hydra.sweeper.storage or SWEEPLAB_STORAGE set keeps its study "
            "there, so pass that URL instead."
        )
    return open_storage(url)


def local_file(url: str) -> Path | None:
    """The file behind a SQLite or journal URL (``None`` for a database server)."""
    if is_journal(url):
        return journal_path(url)
    if url.startswith("sqlite:///"):
        return Path(url.removeprefix("sqlite:///"))
    return None


def _rdb_storage(
    url: str, engine_kwargs: dict[str, Any], heartbeat: Heartbeat | None, attempts: int = 5
) -> RDBStorage:
    """``RDBStorage(url)``; workers that start together on a new database race to create
    Optuna's tables, and the losers (a duplicate key or table) simply try again."""

    def connect() -> RDBStorage:
        with experimental():  # heartbeats: experimental since Optuna 2.8
            return RDBStorage(url, engine_kwargs=engine_kwargs, **_heartbeat_options(heartbeat))

    for _ in range(attempts - 1):
        try:
            return connect()
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError):
            time.sleep(0.2 + random.random())
    return connect()


def _heartbeat_options(heartbeat: Heartbeat | None) -> dict[str, Any]:
    if heartbeat is None:
        return {}
    return dict(
        heartbeat_interval=heartbeat.interval,
        grace_period=heartbeat.grace_period,
        heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(
            max_retry=heartbeat.max_retry
        ),
    )


def has_heartbeat(storage: BaseStorage) -> bool:
    return isinstance(storage, RDBStorage) and storage.get_heartbeat_interval() is not None
