"""Trials that resume: a trial keeps a last-epoch checkpoint, and the retry of a dead worker's
trial goes on from it (epochs, pruner values, running bests, best.ckpt, W&B run) instead of
training from epoch 0. The slow tests kill and stop real sweep processes."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import optuna
import pytest
import pytorch_lightning as pl
import torch
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import OmegaConf
from optuna.trial import TrialState
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.demos.boring_classes import BoringModel
from torchmetrics import MaxMetric, MinMetric

from sweeplab.errors import ConfigError
from sweeplab.sweep import queries
from sweeplab.sweep import study as stored
from sweeplab.sweep.context import NODE, TrialContext
from sweeplab.sweep.resume import last_checkpoint, without_lightning_requeue
from sweeplab.trainers import LastCheckpoint, Resumable, trainer
from tests.conftest import QUICK, ROOT

# Fast tests: the context field and the checkpoint lookup, no training.


def test_the_context_names_the_trial_it_resumes() -> None:
    context = TrialContext("s", 5, "sqlite:///x.db", resumes=2)
    assert context.as_override().endswith(", resumes: 2}")
    node = {"study_name": "s", "number": 5, "storage": "sqlite:///x.db", "resumes": 2}
    assert TrialContext.from_config(OmegaConf.create({NODE: node})) == context
    assert "resumes" not in TrialContext("s", 5, "sqlite:///x.db").as_override()  # a default


@pytest.mark.parametrize("resumes", [-1, 5, 7, True, "2", 2.0])
def test_a_context_resuming_no_earlier_trial_is_refused(resumes: object) -> None:
    with pytest.raises(ConfigError, match=r"`sweep_trial.resumes`=.* is invalid: give the number"):
        TrialContext("s", 5, "sqlite:///x.db", resumes=resumes)  # type: ignore[arg-type]


def test_the_failed_trial_s_last_checkpoint_is_found_next_to_this_trial_s(tmp_path: Path) -> None:
    run_dir = tmp_path / "trial_12"
    failed = tmp_path / "trial_3" / "checkpoints" / "last.ckpt"
    assert last_checkpoint(run_dir, 12, 3, run_dir / "checkpoints", "last.ckpt") is None
    failed.parent.mkdir(parents=True)
    failed.write_bytes(b"x")
    found = last_checkpoint(run_dir, 12, 3, run_dir / "checkpoints", "last.ckpt")
    assert found == failed.resolve()
    # a run directory not named by the trial's number: no guess, a fresh start
    assert last_checkpoint(tmp_path / "other", 12, 3, tmp_path / "other", "last.ckpt") is None


SLURM_JOB_ENV = {"SLURM_NTASKS": "1", "SLURM_JOB_NAME": "worker", "SLURM_NODELIST": "n1"}


@pytest.mark.parametrize("sweep_owns_requeue", [True, False])
def test_under_slurm_a_trial_leaves_the_requeue_to_the_sweep(
    sweep_owns_requeue: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lightning requeues a SLURM job on SIGUSR1 itself; a trial's Trainer does not."""
    for name, value in SLURM_JOB_ENV.items():
        monkeypatch.setenv(name, value)
    switches = without_lightning_requeue(OmegaConf.create({}))
    assert without_lightning_requeue(OmegaConf.create({"plugins": []})) == {}  # the user's own
    handlers = []

    class Seen(pl.Callback):
        def on_train_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
            handlers.append(signal.getsignal(signal.SIGUSR1))

    trainer = pl.Trainer(
        max_epochs=1,
        limit_train_batches=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[Seen()],
        **(switches if sweep_owns_requeue else {}),
    )
    trainer.fit(BoringModel())
    assert (handlers[0] is signal.SIG_DFL) is sweep_owns_requeue


class NeverImproves(BoringModel):
    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self.log("val/loss", 1.0)  # the same every epoch: best.ckpt is saved once


class Epochs(pl.Callback):
    def __init__(self) -> None:
        self.started: list[int] = []

    def on_train_epoch_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.started.append(trainer.current_epoch)


def _fit(tmp_path: Path, max_epochs: int, ckpt_path: Path | None = None) -> list[int]:
    """Fit with a best.ckpt callback and LastCheckpoint; the epochs this fit trained."""
    best = ModelCheckpoint(dirpath=tmp_path, filename="best", monitor="val/loss")
    epochs = Epochs()
    fit = trainer(
        accelerator="cpu",
        max_epochs=max_epochs,
        limit_train_batches=2,
        limit_val_batches=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[best, LastCheckpoint(), epochs],
    )
    fit.fit(NeverImproves(), ckpt_path=ckpt_path)
    return epochs.started


def test_last_ckpt_is_every_epoch_s_and_a_fit_from_it_starts_the_next_epoch(
    tmp_path: Path,
) -> None:
    """Lightning's own save_last writes last.ckpt only in epochs that improved."""
    assert _fit(tmp_path, max_epochs=3) == [0, 1, 2]
    last = tmp_path / "last.ckpt"
    assert torch.load(last, weights_only=False)["epoch"] == 2
    assert _fit(tmp_path / "resumed", max_epochs=5, ckpt_path=last) == [3, 4]


def test_running_bests_and_best_checkpoints_move_with_a_resumed_run(tmp_path: Path) -> None:
    old, new = tmp_path / "trial_0" / "checkpoints", tmp_path / "trial_1" / "checkpoints"
    old.mkdir(parents=True)
    (old / "best.ckpt").write_bytes(b"best")
    module = torch.nn.Module()
    module.loss_best, module.acc_best = MinMetric(), MaxMetric()
    module.loss_best.update(torch.tensor(0.3))
    module.acc_best.update(torch.tensor(0.9))
    callback = ModelCheckpoint(dirpath=new, filename="best")
    new = Path(callback.dirpath)
    checkpoint = {
        "callbacks": {
            callback.state_key: {
                "dirpath": str(old),
                "best_model_path": str(old / "best.ckpt"),
                "kth_best_model_path": str(old / "best.ckpt"),
                "best_k_models": {str(old / "best.ckpt"): torch.tensor(0.3)},
                "last_model_path": str(old / "last.ckpt"),
            }
        }
    }
    Resumable().on_save_checkpoint(None, module, checkpoint)  # type: ignore[arg-type]

    fresh = torch.nn.Module()
    fresh.loss_best, fresh.acc_best = MinMetric(), MaxMetric()
    fresh.device = torch.device("cpu")
    trainer = SimpleNamespace(checkpoint_callbacks=[callback])
    resumable = Resumable()
    resumable.on_load_checkpoint(trainer, fresh, checkpoint)  # type: ignore[arg-type]
    resumable.on_train_epoch_start(trainer, fresh)  # type: ignore[arg-type]
    fresh.loss_best.update(torch.tensor(0.5))  # the first epoch after the checkpoint
    fresh.acc_best.update(torch.tensor(0.8))
    assert float(fresh.loss_best.compute()) == pytest.approx(0.3)
    assert float(fresh.acc_best.compute()) == pytest.approx(0.9)
    state = checkpoint["callbacks"][callback.state_key]
    assert state["dirpath"] == str(new)
    assert state["best_model_path"] == state["kth_best_model_path"] == str(new / "best.ckpt")
    assert list(state["best_k_models"]) == [str(new / "best.ckpt")]
    assert state["last_model_path"] == str(new / "last.ckpt")
    assert (new / "best.ckpt").read_bytes() == b"best"  # copied; the failed trial's stays
    assert (old / "best.ckpt").is_file()


def test_a_run_whose_trial_was_failed_meanwhile_records_nothing() -> None:
    """A worker stopped past its heartbeat's grace period: its trial was failed (and queued
    again) by another worker's check, so the run's late outcome is dropped."""
    study = optuna.create_study()
    trial = study.ask()
    study.tell(trial, state=TrialState.FAIL)  # as a heartbeat check fails it
    try:
        trial.report(0.5, step=3)  # what the resumed run does at its next epoch
    except optuna.exceptions.UpdateFinishedTrialError as e:
        late = JobReturn(status=JobStatus.FAILED, _return_value=e)
    assert stored.record(study, trial, late) is None
    [frozen] = study.trials
    assert frozen.state == TrialState.FAIL and frozen.user_attrs == {}
    assert queries.error_of(frozen) == queries.LOST_WORKER
    done = study.ask()
    study.tell(done, 1.0)
    assert (
        stored.record(study, done, JobReturn(status=JobStatus.COMPLETED, _return_value=2.0)) is None
    )
    assert study.trials[1].value == 1.0  # a trial finished already keeps its value


# Slow tests: real sweep processes, killed (SIGKILL) or stopped (SIGSTOP) mid-trial.

EPOCHS = 12
SWEEP = (
    "hparams_search=mlp_optuna",
    f"trainer.max_epochs={EPOCHS}",
    "hydra.sweeper.n_trials=1",
    "hydra.sweeper.heartbeat.interval=1",
    "hydra.sweeper.heartbeat.grace_period=3",
)


def _command(fashion_dir: Path, logs: Path, *overrides: str) -> list[str]:
    return [
        sys.executable,
        str(ROOT / "train.py"),
        "-m",
        f"paths.log_dir={logs}",
        f"data.data_dir={fashion_dir}",
        *QUICK,
        *SWEEP,
        *overrides,
    ]


def _start(command: list[str], env: dict[str, str], out: Path) -> subprocess.Popen:
    with out.open("w") as f:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT)


def _checkpointed(process: subprocess.Popen, sweep_dir: Path, out: Path) -> None:
    """Wait until trial 0 has reported 3 epochs, so that last.ckpt holds epoch 2 or later."""
    deadline = time.monotonic() + 180
    last = sweep_dir / "trial_0" / "checkpoints" / "last.ckpt"
    study = None
    while True:
        assert process.poll() is None, out.read_text()[-3000:]
        assert time.monotonic() < deadline, "trial 0 never checkpointed its epochs"
        if last.is_file():
            study = study or optuna.load_study(
                study_name="mlp_optuna", storage=f"sqlite:///{sweep_dir / 'optuna.db'}"
            )
            trial = study.trials[0]
            assert trial.state == TrialState.RUNNING, "trial 0 ended before it could be stopped"
            if len(trial.intermediate_values) >= 3:
                return
        time.sleep(0.02)


def _check_resumed(study: optuna.Study, sweep_dir: Path) -> optuna.trial.FrozenTrial:
    """Trial 0 failed with its worker, its retry (trial 1) went on from its checkpoint: one
    finished trial, one trained run, epochs and values continuous."""
    failed, retry = study.trials
    assert failed.state == TrialState.FAIL and stored.ERROR not in failed.user_attrs
    assert failed.values is None
    assert retry.state == TrialState.COMPLETE and queries.retry_of(retry) == 0
    assert queries.count_finished(study) == 1
    assert queries.count(study, TrialState.RUNNING, TrialState.WAITING) == 0
    assert [p.name for p in sweep_dir.glob("trial_*") if (p / "metrics.json").is_file()] == [
        "trial_1"
    ]
    assert retry.user_attrs[stored.RESUMED_FROM] == 0
    assert retry.user_attrs[stored.EPOCHS_LOST] in (0, 1)
    # one continuous trial for the pruner: every epoch once, the checkpointed ones carried
    assert sorted(retry.intermediate_values) == list(range(EPOCHS))
    record = json.loads((sweep_dir / "trial_1" / "metrics.json").read_text())
    trained_here = len(record["epoch_seconds"])
    start = EPOCHS - trained_here
    assert record["epochs"] == EPOCHS and 2 <= start < EPOCHS
    assert start + retry.user_attrs[stored.EPOCHS_LOST] == len(failed.intermediate_values)
    for step in range(start):
        assert retry.intermediate_values[step] == failed.intermediate_values[step]
    # the objective (val/loss_best) is the best of all epochs, the failed trial's included
    assert retry.value == pytest.approx(min(retry.intermediate_values.values()), rel=1e-6)
    log = (sweep_dir / "trial_1" / "train.log").read_text()
    assert f"Trial 1 goes on from trial 0's checkpoint at epoch {start + 1} of {EPOCHS}" in log
    # the retry's best.ckpt is its own; no last.ckpt is left once the trial is done
    assert (sweep_dir / "trial_1" / "checkpoints" / "best.ckpt").is_file()
    assert not list(sweep_dir.glob("trial_1/checkpoints/last*.ckpt"))
    return retry


@pytest.mark.slow
def test_a_killed_worker_s_trial_resumes_from_its_last_checkpoint(
    fashion_dir: Path, tmp_path: Path, isolated_env: dict[str, str]
) -> None:
    env = {**isolated_env, "WANDB_MODE": "offline"}
    command = _command(fashion_dir, tmp_path, "logger=wandb")
    sweep_dir = tmp_path / "sweeps" / "mlp_optuna"
    first = _start(command, env, tmp_path / "first.out")
    _checkpointed(first, sweep_dir, tmp_path / "first.out")
    os.kill(first.pid, signal.SIGKILL)
    first.wait()

    again = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    study = optuna.load_study(
        study_name="mlp_optuna", storage=f"sqlite:///{sweep_dir / 'optuna.db'}"
    )
    retry = _check_resumed(study, sweep_dir)
    assert not (sweep_dir / "trial_0" / "checkpoints" / "last.ckpt").exists()  # taken over
    # the retry logged to the failed trial's W&B run
    run_ids = [
        re.sub(r"^offline-run-\d+_\d+-", "", p.name)
        for trial in ("trial_0", "trial_1")
        for p in (sweep_dir / trial / "wandb").glob("offline-run-*")
    ]
    assert run_ids == [retry.user_attrs[stored.WANDB_RUN_ID]] * 2
    with (sweep_dir / "trials.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [row["epochs_lost"] for row in rows] == ["", str(retry.user_attrs[stored.EPOCHS_LOST])]
    lost = retry.user_attrs[stored.EPOCHS_LOST]
    assert (
        f"1 retried after their worker died ({lost} epoch(s) lost)"
        in (sweep_dir / "report.md").read_text()
    )


@pytest.mark.slow
def test_a_worker_stopped_past_its_heartbeat_writes_nothing_for_the_trial_it_lost(
    fashion_dir: Path, tmp_path: Path, isolated_env: dict[str, str]
) -> None:
    """SIGSTOP a worker mid-trial: another worker fails the trial by its heartbeat and resumes
    it; SIGCONT the first, whose run then finds the trial no longer its own."""
    command = _command(fashion_dir, tmp_path, "logger=none")
    sweep_dir = tmp_path / "sweeps" / "mlp_optuna"
    stopped = _start(command, isolated_env, tmp_path / "stopped.out")
    _checkpointed(stopped, sweep_dir, tmp_path / "stopped.out")
    os.kill(stopped.pid, signal.SIGSTOP)
    try:
        other = _start(command, isolated_env, tmp_path / "other.out")
        study = optuna.load_study(
            study_name="mlp_optuna", storage=f"sqlite:///{sweep_dir / 'optuna.db'}"
        )
        deadline = time.monotonic() + 180
        while study.trials[0].state == TrialState.RUNNING:  # failed by the other's check
            assert other.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        os.kill(stopped.pid, signal.SIGCONT)
    assert other.wait(timeout=300) == 0, (tmp_path / "other.out").read_text()[-3000:]
    assert stopped.wait(timeout=120) == 0, (tmp_path / "stopped.out").read_text()[-3000:]
    _check_resumed(study, sweep_dir)
    assert not (sweep_dir / "trial_0" / "metrics.json").exists()
