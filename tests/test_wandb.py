"""A real offline W&B run, read back with wandb's own tooling."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sweeplab import tracking
from tests.conftest import inspect_wandb_run, run_entry


@pytest.mark.slow  # train.py and wandb as processes
def test_offline_run_holds_flat_config_and_test_metrics(
    fashion_dir: Path, tmp_path: Path, isolated_env: dict[str, str]
) -> None:
    logs = tmp_path / "logs"
    result = run_entry(
        "train.py",
        "model=mlp",
        f"data.data_dir={fashion_dir}",
        "data.val_size=100",
        "trainer.max_epochs=1",
        "tags=[ci,smoke]",
        env=isolated_env,
        log_dir=logs,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    runs = list(logs.rglob("offline-run-*"))
    assert len(runs) == 1, runs
    assert f"wandb sync {runs[0]}" in result.stdout + result.stderr

    run = inspect_wandb_run(runs[0], isolated_env)
    assert run["state"] == "finished" and sorted(run["tags"]) == ["ci", "mlp", "smoke"]
    config, summary = run["config"], run["summary"]
    assert config["model.net.units"] == 350 and config["model.optimizer.lr"] == 0.001
    assert config["data.batch_size"] == 32 and config["model.net.hidden_units"] == []
    saved = json.loads(next(logs.rglob("metrics.json")).read_text())
    for metric in ("test/acc", "test/loss", "val/acc_best"):
        assert summary[metric] == pytest.approx(saved["metrics"][metric], rel=1e-5)


def test_flatten_nests_with_dots() -> None:
    flat = tracking.flatten({"model": {"net": {"units": 5, "filters": [1, 2]}}, "seed": 0})
    assert flat == {"model.net.units": 5, "model.net.filters": [1, 2], "seed": 0}


@pytest.mark.parametrize(
    ("env", "offline"),
    [
        ({"WANDB_MODE": "offline", "WANDB_API_KEY": "k"}, True),
        ({"WANDB_MODE": "online"}, False),
        ({}, True),  # no credentials
        ({"WANDB_API_KEY": "k", "WANDB_BASE_URL": "http://127.0.0.1:9"}, True),
    ],  # unreachable
)
def test_offline_is_chosen_without_credentials_or_server(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, env: dict[str, str], offline: bool
) -> None:
    for key in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_BASE_URL"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert tracking._should_run_offline() is offline


def test_study_run_only_where_the_trials_log_to_wandb() -> None:
    from omegaconf import OmegaConf

    from sweeplab.sweep.wandb_study import wandb_settings

    wandb = {"_target_": "sweeplab.tracking.wandb_logger", "project": "p", "offline": None}
    assert wandb_settings(OmegaConf.create({"logger": {"wandb": wandb}}))["project"] == "p"
    assert wandb_settings(OmegaConf.create({"logger": None})) is None  # logger=none
    csv = {"csv": {"_target_": "pytorch_lightning.loggers.CSVLogger"}}
    assert wandb_settings(OmegaConf.create({"logger": csv})) is None
