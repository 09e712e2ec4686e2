"""Storage calls that lose their database connection wait for the server, within a bound."""

from __future__ import annotations

import psycopg
import pytest
import sqlalchemy

from sweeplab.sweep import reconnect


def _refused() -> None:
    raise sqlalchemy.exc.OperationalError("SELECT 1", {}, psycopg.OperationalError("refused"))


def test_a_server_that_stays_away_ends_in_one_paragraph_without_the_password(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(reconnect, "FIRST_PAUSE_S", 0.01)
    url = "postgresql+psycopg://bob:s3cret@db.example:5432/optuna"
    with pytest.raises(reconnect.StorageUnreachable) as raised:
        reconnect.retrying(_refused, "set_trial_intermediate_value", url, wait_s=0.05)
    message = str(raised.value)
    assert message.startswith("The study storage postgresql+psycopg://bob:***@db.example")
    assert "(refused) during set_trial_intermediate_value" in message
    assert "run the same command again to resume" in message
    assert "s3cret" not in message + caplog.text
    assert "retrying in 0.0 s" in caplog.text


def test_errors_a_wait_cannot_cure_are_raised_at_once() -> None:
    calls = []

    def broken() -> None:
        calls.append(1)
        raise sqlalchemy.exc.IntegrityError("INSERT", {}, psycopg.IntegrityError("duplicate"))

    with pytest.raises(sqlalchemy.exc.IntegrityError):
        reconnect.retrying(broken, "create_new_study", "postgresql://db/x")
    assert calls == [1]


def test_a_call_that_gets_through_on_a_later_try_returns_its_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(reconnect, "FIRST_PAUSE_S", 0.001)
    tries = iter([_refused, _refused, lambda: 7])
    assert reconnect.retrying(lambda: next(tries)(), "get_trial", "postgresql://db/x") == 7
