"""End-to-end sweeps on synthetic data: the README's sweep commands, resumption after a kill,
failures, pruning, parallel trials, and retraining the best configuration."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from omegaconf import OmegaConf
from optuna.trial import TrialState

from sweeplab.sweep import queries
from tests.conftest import (
    QUICK,
    ROOT,
    inspect_wandb_run,
    load_study,
    run_entry,
    sweep,
    sweeplab_cli,
)

# Every test here runs sweeps, train.py or the CLI as processes: CI only.
pytestmark = pytest.mark.slow


def states(study: optuna.Study) -> list[str]:
    return [t.state.name for t in study.trials]


def test_mlp_sweep_writes_results_and_logs_trials_to_wandb(
    fashion_dir: Path, tmp_path: Path, isolated_env: dict[str, str]
) -> None:
    logs = tmp_path / "logs"
    result = sweep(
        fashion_dir,
        logs,
        isolated_env,
        "hparams_search=mlp_optuna",
        "hydra.sweeper.n_trials=3",
        "trainer.max_epochs=2",
        "model/optimizer=sgd",  # fixed on the command line: part of the best configuration
        "data.augment=true",
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    sweep_dir = logs / "sweeps" / "mlp_optuna"
    study = load_study(sweep_dir)
    assert states(study) == ["COMPLETE"] * 3
    for name in (
        "optimization_results.yaml",
        "trials.csv",
        "report.md",
        "optimization_history.png",
        "param_importances.png",
        "parallel_coordinates.png",
    ):
        assert (sweep_dir / name).is_file(), name
    assert "Trial 2 complete" in output and "3/3 finished" in output and "left ~" in output
    assert "execution_whitelist" not in output  # no instantiation warnings

    with (sweep_dir / "trials.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["number"] for r in rows] == ["0", "1", "2"]
    for row, trial in zip(rows, study.trials, strict=True):
        layers = trial.params["num_dense_layers"]
        assert (row["model.net.hidden_units[1]"] == "") == (layers == 1)  # inactive: absent
        assert set(trial.params) >= {"model.net.units", "model.optimizer.lr"}
        assert "model/optimizer" not in trial.params  # fixed on the command line
        assert float(row["value"]) == pytest.approx(trial.value)
        record = json.loads((sweep_dir / f"trial_{trial.number}" / "metrics.json").read_text())
        assert "test/acc" not in record["metrics"]  # trials never see the test split
        assert record["metrics"]["val/loss_best"] == pytest.approx(trial.value)

    # every trial is a W&B run in the study's group, with its number and state
    wandb_runs = sorted(sweep_dir.glob("trial_*/wandb/offline-run-*"))
    assert len(wandb_runs) == 3
    run = inspect_wandb_run(wandb_runs[1], isolated_env)
    assert run["config"]["group"] == "mlp_optuna" and run["config"]["job_type"] == "trial"
    assert (
        run["config"]["sweep_trial.number"] in (0, 1, 2) and run["summary"]["state"] == "complete"
    )

    # one more W&B run holds the study: its trials table, best configuration and plots
    [study_run] = sweep_dir.glob("wandb/offline-run-*")
    run = inspect_wandb_run(study_run, isolated_env)
    assert run["state"] == "finished" and run["config"]["job_type"] == "study"
    assert run["config"]["group"] == "mlp_optuna"
    assert run["summary"]["best_trial"] == study.best_trial.number
    assert run["summary"]["best_value"] == pytest.approx(study.best_value)
    assert "model/optimizer=sgd" in run["summary"]["best_overrides"]
    assert run["summary"]["trials_complete"] == 3
    table = json.loads((study_run / "files" / run["summary"]["trials"]["path"]).read_text())
    assert table["columns"][:3] == ["number", "state", "value"]
    assert [row[2] for row in table["data"]] == pytest.approx([t.value for t in study.trials])
    images = {
        k
        for k, v in run["summary"].items()
        if isinstance(v, dict) and v.get("_type") == "image-file"
    }
    assert images == {
        "plots/optimization_history",
        "plots/param_importances",
        "plots/parallel_coordinates",
    }

    # the best configuration, as overrides and retrained over two seeds
    best = sweeplab_cli("best", str(sweep_dir), env=isolated_env)
    assert best.returncode == 0, best.stderr
    assert best.stdout.startswith("model=mlp ") and " objective=val_loss " in best.stdout
    for fixed in ("model/optimizer=sgd", "data.augment=true", "trainer.max_epochs=2"):
        assert f" {fixed} " in best.stdout
    assert "hparams_search" not in best.stdout and "model.net.hidden_units=[" in best.stdout
    assert f"trial {study.best_trial.number}" in best.stderr

    retrain = run_entry(
        "train.py",
        f"best_of={sweep_dir}",
        "trainer.max_epochs=1",
        "seeds=2",
        "logger=none",
        f"data.data_dir={fashion_dir}",
        *QUICK[:2],
        env=isolated_env,
        log_dir=logs,
    )
    assert retrain.returncode == 0, retrain.stderr[-3000:]
    [run_dir] = (logs / "runs" / "mlp_optuna_best").iterdir()
    summary = json.loads((run_dir / "seeds.json").read_text())
    assert summary["seeds"] == [12345, 12346] and len(summary["metrics"]["test/acc"]["values"]) == 2
    assert (run_dir / "seed_12346" / "metrics.json").is_file()
    assert "model.net.hidden_units=[" in (run_dir / ".hydra" / "overrides.yaml").read_text()
    retrained = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    assert retrained.monitor == "val/loss"  # the checkpoint is picked as the sweep ranked trials
    assert retrained.model.optimizer._target_ == "torch.optim.SGD" and retrained.data.augment

    compare = sweeplab_cli("compare", str(run_dir), env=isolated_env)
    assert "| mlp_optuna_best | 2 |" in compare.stdout and " ± " in compare.stdout


def test_rerun_resumes_to_the_total(
    fashion_dir: Path, tmp_path: Path, isolated_env: dict[str, str]
) -> None:
    args = ("hparams_search=mlp_optuna", "trainer.max_epochs=1", "logger=none")
    first = sweep(fashion_dir, tmp_path, isolated_env, *args, "hydra.sweeper.n_trials=2")
    assert first.returncode == 0, first.stderr[-3000:]
    again = sweep(fashion_dir, tmp_path, isolated_env, *args, "hydra.sweeper.n_trials=3")
    assert again.returncode == 0, again.stderr[-3000:]
    sweep_dir = tmp_path / "sweeps" / "mlp_optuna"
    study = load_study(sweep_dir)
    assert states(study) == ["COMPLETE"] * 3
    trained = [f"trial_{t.number}" for t in study.trials if "duplicate_of" not in t.user_attrs]
    assert sorted(p.name for p in sweep_dir.glob("trial_*")) == trained
    done = sweep(fashion_dir, tmp_path, isolated_env, *args, "hydra.sweeper.n_trials=3")
    assert done.returncode == 0 and len(load_study(sweep_dir).trials) == 3  # nothing more to do


def test_killed_sweep_resumes_without_losing_or_duplicating(
    fashion_dir: Path, tmp_path: Path, isolated_env: dict[str, str]
) -> None:
    args = [
        "train.py",
        "-m",
        f"data.data_dir={fashion_dir}",
        *QUICK,
        f"paths.log_dir={tmp_path}",
        "hparams_search=mlp_optuna",
        "hydra.sweeper.n_trials=3",
        "trainer.max_epochs=25",
        "logger=none",
        "hydra.sweeper.heartbeat.interval=1",
        "hydra.sweeper.heartbeat.grace_period=3",
    ]
    sweep_dir = tmp_path / "sweeps" / "mlp_optuna"
    process = subprocess.Popen(
        [sys.executable, *args],
        cwd=ROOT,
        env=isolated_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 300
    while not (sweep_dir / "trial_2" / ".hydra").is_dir():
        assert process.poll() is None, "the sweep ended before its third trial"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)  # during the third trial
    process.wait()
    killed = load_study(sweep_dir)
    assert states(killed) == ["COMPLETE", "COMPLETE", "RUNNING"]

    resumed = subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=isolated_env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    trials = load_study(sweep_dir).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2 + [
        TrialState.FAIL,
        TrialState.COMPLETE,
    ]
    assert queries.error_of(trials[2]) == queries.LOST_WORKER  # failed by Optuna's heartbeat check
    assert trials[3].params == trials[2].params and queries.retry_of(trials[3]) == 2
    assert [t.params for t in trials[:2]] == [t.params for t in killed.trials[:2]]


def test_diverging_trials_fail_and_the_sweep_goes_on(
    fashion_dir: Path, tmp_path: Path, isolated_env: dict[str, str]
) -> None:
    diverging = (
        "hparams_search=mlp_optuna",
        "model/optimizer=sgd",
        "model.optimizer.lr=choice(10.0,0.001)",
        "hydra/sweeper/sampler=random",
        "hydra.sweeper.sampler.seed=1",
        "trainer.max_epochs=2",
        "logger=none",
        "hydra.sweeper.n_trials=3",
    )
    result = sweep(
        fashion_dir, tmp_path, isolated_env, *diverging, "hydra.sweeper.max_failure_rate=1.0"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    study = load_study(tmp_path / "sweeps" / "mlp_optuna")
    failed = [t for t in study.trials if t.state == TrialState.FAIL]
    assert failed and all("diverged" in t.user_attrs["error"] for t in failed)
    assert all(t.params["model.optimizer.lr"] == 10.0 for t in failed)
    assert states(study).count("COMPLETE") == 3
    assert "diverged" in (tmp_path / "sweeps" / "mlp_optuna" / "report.md").read_text()


def test_too_many_failures_stop_with_a_paragraph(
    fashion_dir: Path, tmp_path: Path, isolated_env: dict[str, str]
) -> None:
    result = sweep(
        fashion_dir,
        tmp_path,
        isolated_env,
        "hparams_search=mlp_optuna",
        "model/optimizer=sgd",
        "model.optimizer.lr=1e6",
        "trainer.max_epochs=1",
        "logger=none",
        "hydra.sweeper.n_trials=4",
        "hydra.sweeper.max_failure_rate=0.25",
        stops_after_work=True,
    )
    assert result.returncode == 1
    assert "Stopping the sweep: 2 trials failed" in result.stderr
    assert "Traceback" not in result.stderr
    assert (tmp_path / "sweeps" / "mlp_optuna" / "trials.csv").is_file()  # results still written


def test_a_launcher_that_refuses_its_first_trials_leaves_no_study(
    fashion_dir: Path, tmp_path: Path, isolated_env: dict[str, str]
) -> None:
    result = sweep(
        fashion_dir,
        tmp_path,
        isolated_env,
        "hparams_search=mlp_optuna",
        "logger=none",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=0",
        "hydra.sweeper.n_jobs=2",
    )
    assert result.returncode == 1
    assert "The launcher (JoblibLauncher) refused to start trials" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "sweeps").exists()  # no study, no directory (run_entry checks all)


def test_pruning_stops_bad_trials_and_saves_epochs(
    fashion_dir: Path, tmp_path: Path, isolated_env: dict[str, str]
) -> None:
    n_trials, epochs = 6, 4
    result = sweep(
        fashion_dir,
        tmp_path,
        isolated_env,
        "hparams_search=mlp_optuna",
        "hydra/sweeper/pruner=median",
        "hydra.sweeper.pruner.n_startup_trials=2",
        "hydra.sweeper.pruner.n_warmup_steps=0",
        "model/optimizer=adam",
        "model.optimizer.lr=choice(0.00001,0.01)",
        "hydra/sweeper/sampler=random",
        f"hydra.sweeper.n_trials={n_trials}",
        f"trainer.max_epochs={epochs}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    sweep_dir = tmp_path / "sweeps" / "mlp_optuna"
    study = load_study(sweep_dir)
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
    assert pruned, states(study)
    assert (
        len([t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)])
        == n_trials
    )
    spent = sum(len(t.intermediate_values) for t in study.trials)
    assert spent < n_trials * epochs
    [pruned_run] = (sweep_dir / f"trial_{pruned[0].number}").glob("wandb/offline-run-*")
    assert inspect_wandb_run(pruned_run, isolated_env)["summary"]["state"] == "pruned"


def test_parallel_trials_in_other_processes_report_through_the_storage(
    fashion_dir: Path, tmp_path: Path, isolated_env: dict[str, str]
) -> None:
    result = sweep(
        fashion_dir,
        tmp_path,
        isolated_env,
        "hparams_search=cnn_optuna",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "hydra.sweeper.n_jobs=2",
        "hydra/sweeper/pruner=median",
        "hydra.sweeper.n_trials=2",
        "trainer.max_epochs=2",
        "logger=none",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    study = load_study(tmp_path / "sweeps" / "cnn_optuna")
    assert states(study) == ["COMPLETE", "COMPLETE"]
    assert all(len(t.intermediate_values) == 2 for t in study.trials)


def test_grid_sampler(fashion_dir: Path, tmp_path: Path, isolated_env: dict[str, str]) -> None:
    refused = sweep(
        fashion_dir,
        tmp_path,
        isolated_env,
        "hparams_search=mlp_optuna",
        "hydra/sweeper/sampler=grid",
        "logger=none",
    )
    assert refused.returncode == 1 and "grid sampler needs every parameter" in refused.stderr
    grid = sweep(
        fashion_dir,
        tmp_path,
        isolated_env,
        "hparams_search=mlp_optuna",
        "name=grid",
        "hydra/sweeper/sampler=grid",
        "hydra.sweeper.layers=null",
        "model/optimizer=adam",
        "model.optimizer.lr=0.001",
        "model.net.units=choice(50,100)",
        "trainer.max_epochs=1",
        "logger=none",
    )
    assert grid.returncode == 0, grid.stderr[-3000:]
    study = load_study(tmp_path / "sweeps" / "grid")
    assert sorted(t.params["model.net.units"] for t in study.trials) == [50, 100]


@pytest.mark.parametrize("sampler", ["tpe", "gp", "cmaes", "random"])
def test_every_sampler_runs_past_its_startup_trials(
    fashion_dir: Path, tmp_path: Path, isolated_env: dict[str, str], sampler: str
) -> None:
    startup = [] if sampler == "random" else ["hydra.sweeper.sampler.n_startup_trials=2"]
    result = sweep(
        fashion_dir,
        tmp_path,
        isolated_env,
        "hparams_search=mlp_optuna",
        f"hydra/sweeper/sampler={sampler}",
        *startup,
        "model.optimizer.lr=interval(0.0005,0.05)",
        "hydra.sweeper.n_trials=4",
        "trainer.max_epochs=1",
        "logger=none",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    study = load_study(tmp_path / "sweeps" / "mlp_optuna")
    assert states(study) == ["COMPLETE"] * 4  # two trials past the startup ones
    names = {"tpe": "TPESampler", "gp": "GPSampler", "cmaes": "CmaEsSampler"}
    assert f"sampler {names.get(sampler, 'RandomSampler')}," in result.stdout + result.stderr


def test_resnet_space_sweeps(
    fashion_dir: Path, tmp_path: Path, isolated_env: dict[str, str]
) -> None:
    """The extended ResNet space: AdamW, cosine schedule, label smoothing, augmentation and
    a variable number of stages all reach the trials."""
    logs = tmp_path / "logs"
    result = sweep(
        fashion_dir,
        logs,
        isolated_env,
        "hparams_search=resnet_optuna",
        "hydra.sweeper.n_trials=2",
        "trainer.max_epochs=1",
        "logger=none",
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    sweep_dir = logs / "sweeps" / "resnet_optuna"
    study = load_study(sweep_dir)
    assert states(study) == ["COMPLETE"] * 2
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE  # val/acc_best
    for trial in study.trials:
        assert {"model.label_smoothing", "model.optimizer.weight_decay", "data.augment"} <= set(
            trial.params
        )
        config = OmegaConf.load(sweep_dir / f"trial_{trial.number}" / ".hydra" / "config.yaml")
        assert len(config.model.net.blocks) == trial.params["num_stages"]
        assert config.model.optimizer._target_ == "torch.optim.AdamW"
        assert config.model.scheduler._target_.endswith("CosineAnnealingLR")
    # the best configuration keeps what the search config itself chose, not the study name
    best = sweeplab_cli("best", str(sweep_dir), env=isolated_env).stdout.split()
    assert {"model=resnet", "model/optimizer=adamw", "model/scheduler=cosine"} <= set(best)
    assert {"objective=val_acc", "data.batch_size=128"} <= set(best)
    assert not [o for o in best if o.startswith(("name=", "hparams_search="))]
