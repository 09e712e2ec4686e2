"""One epoch of each reference baseline on the real Fashion-MNIST, when it is present."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import REAL_DATA, run_entry

pytestmark = [
    pytest.mark.skipif(
        not (REAL_DATA / "train-images-idx3-ubyte.gz").is_file(),
        reason=f"the real Fashion-MNIST is not in {REAL_DATA}",
    ),
    pytest.mark.slow,  # train.py as a process on the real data: CI only
]


@pytest.mark.parametrize(("experiment", "floor"), [("mlp_baseline", 0.83), ("cnn_baseline", 0.87)])
def test_one_epoch_baseline_on_real_data(
    experiment: str, floor: float, tmp_path: Path, isolated_env: dict[str, str]
) -> None:
    result = run_entry(
        "train.py",
        f"experiment={experiment}",
        "trainer.max_epochs=1",
        f"data.data_dir={REAL_DATA}",
        "logger=csv",
        "callbacks.rich_progress_bar=null",
        env=isolated_env,
        log_dir=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    saved = json.loads(next(tmp_path.rglob("metrics.json")).read_text())
    assert saved["metrics"]["test/acc"] >= floor, saved["metrics"]
    with (REAL_DATA / "SHA256SUMS").open() as f:
        official = dict(reversed(line.split()) for line in f if line.strip())
    assert saved["data_sha256"] == {name: official[name] for name in saved["data_sha256"]}


def test_issue_sweep_command_on_real_data(tmp_path: Path, isolated_env: dict[str, str]) -> None:
    result = run_entry(
        "train.py",
        "-m",
        "hparams_search=mlp_optuna",
        "hydra.sweeper.n_trials=3",
        "trainer.max_epochs=1",
        "data.train_subset=3000",
        "logger=csv",
        f"data.data_dir={REAL_DATA}",
        "callbacks.rich_progress_bar=null",
        env=isolated_env,
        log_dir=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    sweep_dir = tmp_path / "sweeps" / "mlp_optuna"
    rows = (sweep_dir / "trials.csv").read_text().splitlines()
    assert [row.split(",")[1] for row in rows[1:]] == ["COMPLETE"] * 3
    for name in (
        "optimization_results.yaml",
        "report.md",
        "optimization_history.png",
        "param_importances.png",
        "parallel_coordinates.png",
    ):
        assert (sweep_dir / name).is_file(), name
