"""Multi-objective sweeps: accuracy against parameters or latency, the Pareto set in the
results, retraining a chosen Pareto trial, and the stock Optuna sweeper as the reference."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from sweeplab.sweep import queries
from sweeplab.sweep import study as stored
from tests.conftest import QUICK, ROOT, load_study, run_entry, sweep, sweeplab_cli

# Every test here runs a sweep, train.py or the CLI as a process: CI only.
pytestmark = pytest.mark.slow

MULTI = (
    "hparams_search=cnn_optuna",
    "objective=acc_vs_params",
    "hydra/sweeper/sampler=nsgaii",
    "hydra.sweeper.sampler.population_size=2",
    "trainer.max_epochs=1",
    "++trainer.limit_train_batches=2",  # undertrained: accuracy differs between networks
    "logger=none",
)


def dominates(a: list[float], b: list[float]) -> bool:
    """For (accuracy up, parameters down): ``a`` is no worse anywhere and better somewhere."""
    no_worse = a[0] >= b[0] and a[1] <= b[1]
    return no_worse and (a[0] > b[0] or a[1] < b[1])


def test_pareto_sweep_and_retraining_a_pareto_trial(
    fashion_dir: Path, tmp_path: Path, isolated_env: dict[str, str]
) -> None:
    logs = tmp_path / "logs"
    result = sweep(fashion_dir, logs, isolated_env, *MULTI, "hydra.sweeper.n_trials=4")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "Pareto set" in output
    sweep_dir = logs / "sweeps" / "cnn_optuna"
    study = load_study(sweep_dir)
    assert len(study.directions) == 2 and len(study.trials) == 4
    results = OmegaConf.load(sweep_dir / "optimization_results.yaml")
    solutions = results.solutions
    assert [s.number for s in solutions] == sorted(t.number for t in study.best_trials)
    for s in solutions:
        assert list(s["values"]) == study.trials[s.number].values
        assert not any(dominates(list(o["values"]), list(s["values"])) for o in solutions)
    for trial in study.trials:  # the second objective is the run's own parameter count
        trained = trial.user_attrs.get(stored.DUPLICATE_OF, trial.number)  # repeats reuse
        record = json.loads((sweep_dir / f"trial_{trained}" / "metrics.json").read_text())
        assert trial.values == [
            record["metrics"]["val/acc_best"],
            record["metrics"]["model/params"],
        ]
    assert (sweep_dir / "pareto_front.png").is_file()
    assert results.epochs_total == sum(1 for t in study.trials if queries.ran(t))

    listed = sweeplab_cli("best", str(sweep_dir), env=isolated_env)
    assert listed.returncode == 0 and f"Pareto set of {len(solutions)} trials" in listed.stdout

    chosen = solutions[-1]
    retrain = run_entry(
        "train.py",
        f"best_of={sweep_dir}",
        f"trial={chosen.number}",
        "logger=none",
        *QUICK[:2],
        env=isolated_env,
        log_dir=logs,
    )
    assert retrain.returncode == 0, retrain.stderr[-3000:]
    [run_dir] = (logs / "runs" / "cnn_optuna_best").iterdir()
    record = json.loads((run_dir / "metrics.json").read_text())
    assert record["metrics"]["model/params"] == chosen["values"][1]
    assert record["metrics"]["val/acc_best"] == pytest.approx(chosen["values"][0], abs=1e-6)


def test_pruning_a_multi_objective_sweep_is_refused(
    fashion_dir: Path, tmp_path: Path, isolated_env: dict[str, str]
) -> None:
    result = sweep(fashion_dir, tmp_path, isolated_env, *MULTI, "hydra/sweeper/pruner=median")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "cannot prune a trial of a multi-objective study" in result.stderr
    assert not list(tmp_path.rglob("trial_*"))


def test_latency_is_measured_and_recorded(
    fashion_dir: Path, tmp_path: Path, isolated_env: dict[str, str]
) -> None:
    result = run_entry(
        "train.py",
        "model=mlp",
        "objective=acc_vs_latency",
        f"data.data_dir={fashion_dir}",
        "trainer.max_epochs=1",
        "logger=none",
        *QUICK[:2],
        env=isolated_env,
        log_dir=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads(next(tmp_path.rglob("metrics.json")).read_text())
    assert record["optimized_metric"] == ["val/acc_best", "model/latency_ms"]
    assert 0 < record["metrics"]["model/latency_ms"] < 10_000
    assert record["metrics"]["model/params"] == 784 * 350 + 350 + 350 * 10 + 10


TOY_APP = """
import hydra

@hydra.main(config_path="conf", config_name="config", version_base=None)
def main(cfg):
    return 5 * cfg.x**2 + 4 * cfg.y**2, (cfg.x - 5) ** 2 + (cfg.y - 5) ** 2

main()
"""
TOY_CONFIG = """
defaults:
  - override hydra/sweeper: {sweeper}
  - override hydra/sweeper/sampler: nsgaii
x: 1
y: 1
hydra:
  sweeper:
    direction: [minimize, minimize]
    study_name: multi
    n_trials: 8
    sampler:
      seed: 123
      population_size: 4
    params:
      x: range(0, 5, step=1)
      y: range(0, 3, step=1)
"""


@pytest.mark.parametrize("sweeper", ["optuna", "sweeplab"])
def test_solutions_have_the_stock_sweepers_structure(tmp_path: Path, sweeper: str) -> None:
    """The stock plugin's multi-objective example, run by it and by sweeplab's sweeper:
    the same `solutions` entries (params and values, non-dominated), sweeplab adding each
    trial's number and overrides."""
    (tmp_path / "conf").mkdir()
    (tmp_path / "my_app.py").write_text(textwrap.dedent(TOY_APP))
    (tmp_path / "conf" / "config.yaml").write_text(TOY_CONFIG.format(sweeper=sweeper))
    done = subprocess.run(
        [
            sys.executable,
            "my_app.py",
            "-m",
            f"hydra.sweep.dir={tmp_path / 'out'}",
            f"hydra.searchpath=[file://{ROOT / 'configs'}]",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = OmegaConf.to_container(OmegaConf.load(tmp_path / "out" / "optimization_results.yaml"))
    assert results["name"] == "optuna"
    solutions = results["solutions"]
    assert solutions and all({"params", "values"} <= set(s) for s in solutions)
    points = [s["values"] for s in solutions]
    for p in points:
        assert set(solutions[0]["params"]) == {"x", "y"} and len(p) == 2
        assert not any(q[0] <= p[0] and q[1] <= p[1] and q != p for q in points)
    if sweeper == "sweeplab":
        assert all(
            s["overrides"][-2:] == [f"x={s['params']['x']}", f"y={s['params']['y']}"]
            for s in solutions
        )
