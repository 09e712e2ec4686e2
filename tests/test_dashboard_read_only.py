"""sweeplab dashboard: read-only by default, and a sweep directory found in its recorded storage."""

from __future__ import annotations

import io
import json
from pathlib import Path

import optuna
import pytest
import yaml

from sweeplab.dashboard import read_only, recorded_storage, storage_url
from sweeplab.errors import ConfigError
from sweeplab.sweep import report


def _call(app, method: str, path: str) -> tuple[str, bytes]:
    status: list[str] = []
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.url_scheme": "http",
        "CONTENT_LENGTH": "0",
    }
    body = b"".join(app(environ, lambda s, headers, exc=None: status.append(s)))
    return status[0], body


def test_changes_are_refused_and_reads_pass(tmp_path: Path) -> None:
    import optuna_dashboard

    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(study_name="kept", storage=url)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    app = read_only(optuna_dashboard.wsgi(url))
    status, body = _call(app, "DELETE", "/api/studies/1")
    assert status.startswith("403") and "--allow-changes" in json.loads(body)["reason"]
    assert _call(app, "POST", "/api/studies")[0].startswith("403")
    assert optuna.get_all_study_names(url) == ["kept"]
    status, body = _call(app, "GET", "/api/studies")
    assert status.startswith("200") and b"kept" in body


def test_a_sweep_directory_is_found_in_the_storage_it_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = tmp_path / "elsewhere.db"
    study = optuna.create_study(study_name="s", storage=f"sqlite:///{storage}")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    sweep_dir = tmp_path / "sweep"
    sweep_dir.mkdir()
    report.write_all(study, sweep_dir, f"sqlite:///{storage}")
    assert storage_url(str(sweep_dir)) == f"sqlite:///{storage}"
    # a password is recorded masked; the URL itself then comes from SWEEPLAB_STORAGE
    secret = "postgresql://u:pw@db.example.org/optuna"
    results = sweep_dir / report.RESULTS_FILE
    recorded = yaml.safe_load(results.read_text()) | {
        "storage": "postgresql://u:***@db.example.org/optuna"
    }
    results.write_text(yaml.safe_dump(recorded))
    assert recorded_storage(sweep_dir) == "postgresql://u:***@db.example.org/optuna"
    monkeypatch.delenv("SWEEPLAB_STORAGE", raising=False)
    with pytest.raises(ConfigError, match="Set SWEEPLAB_STORAGE"):
        storage_url(str(sweep_dir))
    monkeypatch.setenv("SWEEPLAB_STORAGE", secret)
    assert storage_url(str(sweep_dir)) == secret


def test_a_recorded_storage_never_holds_a_password(tmp_path: Path) -> None:
    study = optuna.create_study(study_name="s")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    report.write_all(study, tmp_path, "postgresql://u:pw@db.example.org/optuna")
    assert "pw" not in (tmp_path / report.RESULTS_FILE).read_text().replace("password", "")
    assert recorded_storage(tmp_path) == "postgresql://u:***@db.example.org/optuna"
