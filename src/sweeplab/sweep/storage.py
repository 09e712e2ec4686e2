"""Opening a study's storage from the URL a user gives.

An RDB URL (``sqlite:///...``, ``postgresql://user@host/db``) gets Optuna's heartbeats, so a
worker that dies on any machine has its trial failed and retried; ``journal:<path>`` is
Optuna's journal file for a shared filesystem without a database (no heartbeats).
"""

from __future__ import annotations

import contextlib
import logging
import random
import sqlite3
import time
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy
from optuna.storages import (
    BaseStorage,
    RDBStorage,
    RetryHeartbeatStaleTrialCallback,
)
from optuna.storages.journal import JournalFileBackend

from sweeplab.compat.optuna import experimental
from sweeplab.errors import ConfigError
from sweeplab.redaction import redact
from sweeplab.sweep.leases import RetryingJournalStorage
from sweeplab.sweep.reconnect import ReconnectingRDBStorage
from sweeplab.sweep.settings import Heartbeat

__all__ = [
    "CONNECT_TIMEOUT_S",
    "DEFAULT_SQLITE_FILE",
    "DRIVERS",
    "JOURNAL_SCHEME",
    "has_heartbeat",
    "is_journal",
    "journal_path",
    "local_file",
    "open_existing_storage",
    "open_storage",
    "study_name_in",
]

log = logging.getLogger(__name__)

JOURNAL_SCHEME = "journal:"
DEFAULT_SQLITE_FILE = "optuna.db"  # in the sweep directory; see configs/hydra/sweeper
# A server that accepts connections but never answers fails after about
# CONNECT_ATTEMPTS * CONNECT_TIMEOUT_S + CONNECT_BACKOFF_S seconds (11), not minutes.
CONNECT_TIMEOUT_S = 5
CONNECT_ATTEMPTS = 2
CONNECT_BACKOFF_S = 1
CONNECT_TIMEOUT_ARGS = {  # the connect-timeout keyword of each dialect's or driver's connect()
    "postgresql": "connect_timeout",  # psycopg 3, psycopg2 (libpq's parameter)
    "postgresql+pg8000": "timeout",
    "mysql": "connect_timeout",  # mysqlclient, PyMySQL
    "mysql+mysqlconnector": "connection_timeout",
    "mariadb": "connect_timeout",
}
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


def open_storage(
    url: str, heartbeat: Heartbeat | None = None, *, key: str = "hydra.sweeper.storage"
) -> BaseStorage:
    """The storage behind ``url``, checked now: a missing driver, an unreachable server or an
    unwritable file fails here with one paragraph, before any trial starts; a server that
    never answers fails within ``CONNECT_ATTEMPTS`` connect timeouts. ``key`` names where the
    URL came from in that paragraph."""
    where = f"{key}={redact(url)}" if key else redact(url)
    if is_journal(url):
        return _journal_storage(url, where, heartbeat)
    try:
        return _rdb_storage(url, _engine_kwargs(url), heartbeat)
    except ImportError as e:  # Optuna re-raises the driver's ModuleNotFoundError as this
        scheme = url.split(":", 1)[0]
        missing = getattr(e.__cause__, "name", None) or e.name
        package = DRIVERS.get(scheme, missing or "the driver of " + scheme)
        raise ConfigError(
            f"The database driver for {where} is not installed (no module {missing!r}). "
            f"Install it with `pip install {package}`, or use the default SQLite storage."
        ) from None
    except Exception as e:  # SQLAlchemy's errors: a bad URL, or a server that cannot be reached
        reason = _reason(e)
        if isinstance(e, sqlalchemy.exc.OperationalError):
            reason += f" ({CONNECT_ATTEMPTS} tries, each given {CONNECT_TIMEOUT_S} s)"
        raise ConfigError(
            f"Cannot open the study storage {where}: {reason}. Check the URL (dialect://user@"
            "host:port/database), that the server runs and accepts connections from this "
            "machine, and that the database exists; keep a password out of the command line "
            "with ~/.pgpass or SWEEPLAB_STORAGE (see the README, Scaling out)."
        ) from None


def _journal_storage(url: str, where: str, heartbeat: Heartbeat | None) -> BaseStorage:
    path = journal_path(url)
    max_retry = (heartbeat or Heartbeat()).max_retry
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return RetryingJournalStorage(JournalFileBackend(str(path)), max_retry=max_retry)
    except OSError as e:
        raise ConfigError(
            f"Cannot open the journal file of {where}: {e.strerror}. Point it at a "
            "writable file on a filesystem every worker shares, e.g. journal:///shared/"
            "study.log."
        ) from None


def _engine_kwargs(url: str) -> dict[str, Any]:
    # Several local workers write to one SQLite file: they wait for its lock rather than fail.
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": 60}}
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    parsed = sqlalchemy.engine.make_url(url)
    name = CONNECT_TIMEOUT_ARGS.get(parsed.drivername) or CONNECT_TIMEOUT_ARGS.get(
        parsed.get_backend_name()
    )
    # Drivers wait minutes for a server that accepts the connection but never answers
    # (psycopg: 130 s); a timeout in the URL's own query wins.
    if name and name not in parsed.query:
        kwargs["connect_args"] = {name: CONNECT_TIMEOUT_S}
    return kwargs


def _reason(error: Exception) -> str:
    """The first line of a SQLAlchemy error's own cause, password masked."""
    return redact(str(getattr(error, "orig", None) or error).strip().splitlines()[0])


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
    if existing is not None and not is_journal(url):
        _check_optuna_sqlite(existing, url)
    return open_storage(url, key="")


def study_name_in(storage: BaseStorage, source: str, study_name: str | None = None) -> str:
    """``study_name``, checked to be in ``storage`` (opened from ``source``); it may be left out
    when the storage holds one study."""
    names = optuna.get_all_study_names(storage)
    held = ", ".join(names) or "none"
    if study_name is None:
        if len(names) != 1:
            raise ConfigError(
                f"{redact(source)} holds {len(names)} studies ({held}): name one with --study NAME."
            )
        return names[0]
    if study_name not in names:
        raise ConfigError(
            f"{redact(source)} holds no study {study_name!r}; it holds {held}. Name one of "
            "them with --study NAME."
        )
    return study_name


def _check_optuna_sqlite(path: Path, url: str) -> None:
    """Refuse a SQLite file that holds no Optuna study, reading it only: opening it as a
    storage would write Optuna's tables into it (an empty file, or another database)."""
    read_only = f"{path.resolve().as_uri()}?mode=ro"
    try:
        with contextlib.closing(sqlite3.connect(read_only, uri=True)) as db:
            tables = {name for (name,) in db.execute("select name from sqlite_master")}
    except sqlite3.DatabaseError:  # not a SQLite file at all
        tables = set()
    if "studies" in tables:
        return
    what = "an empty file" if path.stat().st_size == 0 else "not an Optuna SQLite database"
    raise ConfigError(
        f"{path} ({redact(url)}) is {what}, so it holds no study. Pass the "
        f"{DEFAULT_SQLITE_FILE} a sweep wrote (logs/sweeps/<study name>/{DEFAULT_SQLITE_FILE}) "
        "or its sweep directory."
    )


def local_file(url: str) -> Path | None:
    """The file behind a SQLite or journal URL (``None`` for a database server)."""
    if is_journal(url):
        return journal_path(url)
    if url.startswith("sqlite:///"):
        return Path(url.removeprefix("sqlite:///"))
    return None


def _rdb_storage(
    url: str, engine_kwargs: dict[str, Any], heartbeat: Heartbeat | None, races: int = 5
) -> RDBStorage:
    """``RDBStorage(url)``; workers that start together on a new database race to create
    Optuna's tables, and the losers (a duplicate key or table) simply try again. A server
    that cannot be reached is tried ``CONNECT_ATTEMPTS`` times, a second apart."""

    # A server may restart under a long sweep: its calls wait for it (reconnect.py). A SQLite
    # file has no server to wait for; its OperationalErrors (a lock held past the 60 s
    # timeout, a full or read-only disk) are reported at once.
    kind = RDBStorage if url.startswith("sqlite") else ReconnectingRDBStorage

    def connect() -> RDBStorage:
        with experimental():  # heartbeats: experimental since Optuna 2.8
            return kind(url, engine_kwargs=engine_kwargs, **_heartbeat_options(heartbeat))

    unreachable = 0
    while True:
        try:
            return connect()
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError):
            races -= 1
            if races <= 0:
                raise
            time.sleep(0.2 + random.random())
        except sqlalchemy.exc.OperationalError as e:
            unreachable += 1
            if url.startswith("sqlite") or unreachable >= CONNECT_ATTEMPTS:
                raise
            log.warning(
                "Cannot reach the study storage %s (%s); retrying in %d s.",
                redact(url),
                _reason(e),
                CONNECT_BACKOFF_S,
            )
            time.sleep(CONNECT_BACKOFF_S)


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
