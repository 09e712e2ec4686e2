"""A database server that accepts connections and never answers: opening the study's storage
(the sweep command, ``sweeplab best``) fails with one paragraph within seconds, not minutes."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator

import optuna
import pytest

from sweeplab import cli
from sweeplab.errors import ConfigError
from sweeplab.sweep.settings import Heartbeat
from sweeplab.sweep.storage import has_heartbeat, open_storage
from tests.services import PostgresServer

pytest.importorskip("psycopg")  # the driver of postgresql:// URLs (pip install -e ".[postgresql]")

WITHIN_S = 20  # the storage answers within 15 s; the rest is this machine's slack


@pytest.fixture
def silent_url() -> Iterator[str]:
    """A PostgreSQL URL whose server completes TCP handshakes (the kernel does, for a socket
    that listens) but never accepts or says a word."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield f"postgresql://sweeper:hunter2@127.0.0.1:{server.getsockname()[1]}/optuna"


@pytest.mark.slow
def test_the_sweep_storage_refuses_a_silent_server_in_seconds(
    silent_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    started = time.monotonic()
    with caplog.at_level(logging.WARNING), pytest.raises(ConfigError) as refused:
        open_storage(silent_url, Heartbeat())
    assert time.monotonic() - started < WITHIN_S
    message = str(refused.value)
    assert "hydra.sweeper.storage=postgresql://sweeper:***@127.0.0.1" in message
    assert "timeout" in message and "the server runs" in message and "hunter2" not in message
    [retrying] = [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()]
    assert "sweeper:***@" in retrying and "hunter2" not in retrying


@pytest.mark.slow
def test_sweeplab_best_refuses_a_silent_server_in_seconds(
    silent_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    started = time.monotonic()
    with pytest.raises(SystemExit) as exited:
        cli.main(["best", silent_url])
    assert exited.value.code == 1 and time.monotonic() - started < WITHIN_S
    err = capsys.readouterr().err
    assert "Cannot open the study storage postgresql://sweeper:***@127.0.0.1" in err
    assert "timeout" in err and "hunter2" not in err and "Traceback" not in err


def test_a_refused_connection_is_tried_twice_and_refused_at_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        url = f"postgresql://sweeper:hunter2@127.0.0.1:{closed.getsockname()[1]}/optuna"
    started = time.monotonic()
    with caplog.at_level(logging.WARNING), pytest.raises(ConfigError, match="refused"):
        open_storage(url)
    assert time.monotonic() - started < 5
    assert len([r for r in caplog.records if "retrying" in r.getMessage()]) == 1


@pytest.mark.slow
def test_a_real_server_answers_with_the_connect_timeout_set(postgres: PostgresServer) -> None:
    url = postgres.new_database("timeouts") + "?connect_timeout=30"  # the URL's own wins
    storage = open_storage(url, Heartbeat())
    assert has_heartbeat(storage)
    optuna.create_study(study_name="t", storage=storage).optimize(lambda t: 0.5, n_trials=1)
