"""``sweeplab dashboard``: optuna-dashboard on a real sweep, driven in Debian's Chromium."""

from __future__ import annotations

import re
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import load_study, sweep, sweeplab_cli

# Every test here runs a sweep or the CLI as a process, and one drives Chromium: CI only.
pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium")


@pytest.fixture
def finished_sweep(fashion_dir: Path, tmp_path: Path, isolated_env: dict[str, str]) -> Path:
    result = sweep(
        fashion_dir,
        tmp_path / "logs",
        isolated_env,
        "hparams_search=mlp_optuna",
        "hydra.sweeper.n_trials=3",
        "trainer.max_epochs=1",
        "logger=none",
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    return tmp_path / "logs" / "sweeps" / "mlp_optuna"


@pytest.fixture
def dashboard_url(finished_sweep: Path, isolated_env: dict[str, str]) -> Iterator[str]:
    """The URL printed by ``sweeplab dashboard <sweep dir> --port 0``; Ctrl-C stops it."""
    server = subprocess.Popen(
        [sys.executable, "-m", "sweeplab.cli", "dashboard", str(finished_sweep), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=isolated_env,
    )
    try:
        first_line = server.stdout.readline()
        url = re.search(r"http://\S+", first_line)
        assert url, first_line + server.stdout.read()
        yield url.group(0)
    finally:
        server.send_signal(signal.SIGINT)
        output, _ = server.communicate(timeout=30)
    assert server.returncode == 0 and "Dashboard stopped." in output, output


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium: .ci/run installs Debian's chromium")
def test_dashboard_shows_the_study_in_a_real_browser(
    dashboard_url: str, finished_sweep: Path, tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    study = load_study(finished_sweep)
    best = study.best_trial
    with sync_playwright() as p:
        # The system Chromium: `playwright install` would download a browser.
        browser = p.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        page = browser.new_page()
        page.goto(dashboard_url)
        page.get_by_text(study.study_name, exact=False).first.click()
        expect(page.get_by_text(f"Best Trial (number={best.number})")).to_be_visible()
        expect(page.get_by_text(repr(best.value), exact=True).first).to_be_visible()
        page.screenshot(path=tmp_path / "study.png", full_page=True)
        page.goto(page.url.rstrip("/") + "/trials")  # the "Trials (List)" tab
        expect(page.get_by_text(f"{len(study.trials)} Trials", exact=True)).to_be_visible()
        page.screenshot(path=tmp_path / "trials.png", full_page=True)
        browser.close()
    assert (tmp_path / "study.png").stat().st_size > 10_000


def test_dashboard_refuses_a_missing_storage_without_creating_one(
    tmp_path: Path, isolated_env: dict[str, str]
) -> None:
    missing = tmp_path / "typo" / "optuna.db"
    result = sweeplab_cli("dashboard", f"sqlite:///{missing}", env=isolated_env)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "There is no study storage" in result.stderr
    assert not missing.parent.exists()
    not_a_sweep = sweeplab_cli("dashboard", str(tmp_path / "nowhere"), env=isolated_env)
    assert not_a_sweep.returncode == 1 and "neither a sweep directory" in not_a_sweep.stderr


def test_dashboard_port_in_use_is_one_paragraph(
    tmp_path: Path, isolated_env: dict[str, str]
) -> None:
    import optuna

    optuna.create_study(study_name="s", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = sweeplab_cli("dashboard", str(tmp_path), "--port", str(port), env=isolated_env)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"127.0.0.1:{port}" in result.stderr and "--port" in result.stderr
