"""``python train.py -m ...`` in this process, for the fast loop: Hydra, sweeplab's sweeper and
its command role, the worker loop and the reports, with the trials run by Hydra's basic
launcher in this process too. The sweeps that start processes (test_sweep.py, test_workers.py)
are slow."""

from __future__ import annotations

import runpy
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig

from sweeplab.sweep import study as stored
from sweeplab.sweep.best import load_best
from tests.conftest import QUICK, ROOT, load_study

# No Hydra logging set-up: it would replace the handlers of this process's root logger.
IN_PROCESS = ("hydra/job_logging=none", "hydra/hydra_logging=none")
MLP = ("hparams_search=mlp_optuna", "trainer.max_epochs=1", "logger=none")


@pytest.fixture
def train_py(
    fashion_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Iterator:
    """``train_py(*overrides)``: train.py's ``__main__`` with ``-m``, logs under tmp_path;
    returns the exit status and stderr."""
    for key in [k for k in __import__("os").environ if k.startswith(("WANDB_", "SWEEPLAB_"))]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("SWEEPLAB_ROOT", str(ROOT))  # which train.py would set for good
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    hydra_config = HydraConfig.instance().cfg

    def run(*overrides: str) -> tuple[int, str]:
        argv = ["-m", f"paths.log_dir={tmp_path}", f"data.data_dir={fashion_dir}", *QUICK]
        monkeypatch.setattr(sys, "argv", [str(ROOT / "train.py"), *argv, *IN_PROCESS, *overrides])
        GlobalHydra.instance().clear()
        try:
            runpy.run_path(str(ROOT / "train.py"), run_name="__main__")
            status = 0
        except SystemExit as exited:
            status = exited.code
        return status, capsys.readouterr().err

    yield run
    GlobalHydra.instance().clear()
    HydraConfig.instance().cfg = hydra_config  # as the test before left it


def test_a_sweep_runs_its_trials_and_writes_its_results(train_py, tmp_path: Path) -> None:
    status, stderr = train_py(*MLP, "hydra.sweeper.n_trials=2")
    assert status == 0, stderr[-3000:]
    sweep_dir = tmp_path / "sweeps" / "mlp_optuna"
    study = load_study(sweep_dir)
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 2
    for name in ("optimization_results.yaml", "trials.csv", "report.md"):
        assert (sweep_dir / name).is_file(), name
    for trial in study.trials:
        assert (sweep_dir / f"trial_{trial.number}" / "metrics.json").is_file()
        assert stored.kept_outcome(trial) == trial.values  # kept by the run before the tell
        assert not list(sweep_dir.glob(f"trial_{trial.number}/checkpoints/last*.ckpt"))
    [best] = load_best(str(sweep_dir))
    assert best.number == study.best_trial.number and best.values == [study.best_value]
    assert best.overrides[0] == "model=mlp"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (("hydra.sweeper.n_jobs=0",), "`hydra.sweeper.n_jobs`=0 is invalid"),
        (
            (
                "hparams_search=cnn_optuna",
                "objective=acc_vs_params",
                "hydra/sweeper/sampler=nsgaii",
                "hydra/sweeper/pruner=median",
            ),
            "cannot prune a trial of a multi-objective study",
        ),
    ],
)
def test_bad_sweeper_settings_stop_before_any_trial(
    train_py, tmp_path: Path, overrides: tuple[str, ...], message: str
) -> None:
    status, stderr = train_py(*MLP, *overrides)
    assert status == 1 and message in stderr, stderr[-3000:]
    assert not list(tmp_path.rglob("trial_*"))
