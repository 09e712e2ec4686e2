"""Bad input is refused before training with one paragraph that names the key and the fix,
without a traceback; reading a storage never creates one; WANDB_MODE=disabled writes nothing."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import optuna
import pytest
import torch

from tests.conftest import run_entry, sweeplab_cli

RUN = ("model=mlp", "trainer.max_epochs=1", "data.val_size=100", "logger=none")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ("model.optimizer.lr=abc", "`model.optimizer.lr`='abc' is invalid: use a positive number"),
        ("model.optimizer.lr=inf", "`model.optimizer.lr`=inf is invalid: use a positive number"),
        ("seed=abc", "`seed`='abc' is invalid: use an integer"),
        ("seeds=2 seed=4294967295", "`seed`=4294967295 is invalid: use an integer from 0 to"),
        ("seeds=0", "`seeds`=0 is invalid: use a positive integer"),
        ("data.augment=maybe", "`data.augment`='maybe' is invalid: use true or false"),
        ("test=maybe", "`test`='maybe' is invalid: use true or false"),
        (
            "trainer.keep_freed_memory=maybe",
            "`trainer.keep_freed_memory`='maybe' is invalid: use true or false",
        ),
        ("data.batch_size=true", "data.batch_size=True is invalid: use a positive integer"),
        ("data.split_seed=abc", "data.split_seed='abc' is invalid: use an integer >= 0"),
        ("optimized_metric=val/nope", "`optimized_metric`='val/nope' is not a metric this run"),
        ("monitor=val/f1", "`monitor`='val/f1' is not a metric this run logs"),
        (
            "callbacks.model_checkpoint.monitor=val/f1",
            "`callbacks.model_checkpoint.monitor`='val/f1' is not a metric this run logs",
        ),
        ("monitor_mode=up", "`monitor_mode`='up' is invalid: use min or max"),
        ("trainer.check_val_every_n_epoch=0", "`trainer.check_val_every_n_epoch`=0 is invalid"),
        ("trainer.devices=0", "Invalid config at `trainer`"),
        ("trainer.min_epochs=5", "`trainer.min_epochs`=5 is invalid with trainer.max_epochs=1"),
        (
            "+trainer.num_sanity_val_steps=abc",
            "`trainer.num_sanity_val_steps`='abc' is invalid: use the number of",
        ),
        (
            "callbacks=early_stopping callbacks.early_stopping.patience=-1",
            "`callbacks.early_stopping.patience`=-1 is invalid",
        ),
        ("model/scheduler=cosine model.scheduler.T_max=0", "Invalid config at `model.scheduler`"),
        ("model=classifier", "`model=classifier` is the base that every architecture builds on"),
        ("model.optimizer.lr=${nope}", "The config value at `model.optimizer.lr` cannot be read"),
        ("model.net.hidden_units=5", "hidden_units=5 is invalid: give a list with one entry"),
        ("tags=notalist", "`tags`='notalist' is invalid: give a list"),
        ("name=../elsewhere", "`name`='../elsewhere' is invalid"),
        ("hparams_search=mlp_optuna", "describes a sweep, but the command runs once: add -m"),
        pytest.param(
            "trainer=gpu",
            "`trainer.accelerator`='gpu', but torch",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here"),
        ),
    ],
)
def test_a_bad_value_stops_the_run_before_training(
    fashion_dir: Path, tmp_path: Path, isolated_env: dict[str, str], overrides: str, message: str
) -> None:
    started = time.monotonic()
    result = run_entry(
        "train.py",
        *RUN,
        f"data.data_dir={fashion_dir}",
        *overrides.split(),
        env=isolated_env,
        log_dir=tmp_path,
    )
    assert result.returncode == 1
    assert message in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert not list(tmp_path.rglob("*.ckpt"))  # no epoch was trained
    assert time.monotonic() - started < 60


@pytest.mark.parametrize(
    ("env", "overrides", "message"),
    [
        ({"WANDB_MODE": "banana"}, ["logger=wandb"], "WANDB_MODE='banana' is invalid"),
        ({"SWEEPLAB_TRUSTED": "*"}, [], "SWEEPLAB_TRUSTED holds '*', which is not a module"),
        (
            {"SWEEPLAB_TRUSTED": "collections"},
            ["model.net._target_=collections.OrderedDict"],
            "is not a torch.nn.Module",
        ),
    ],
)
def test_a_bad_environment_stops_the_run_before_training(
    fashion_dir: Path,
    tmp_path: Path,
    isolated_env: dict[str, str],
    env: dict[str, str],
    overrides: list[str],
    message: str,
) -> None:
    result = run_entry(
        "train.py",
        *RUN[:-1],
        f"data.data_dir={fashion_dir}",
        *overrides,
        env={**isolated_env, **env},
        log_dir=tmp_path,
    )
    assert result.returncode == 1
    assert message in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert not list(tmp_path.rglob("*.ckpt"))


def test_reading_a_missing_storage_never_creates_one(
    tmp_path: Path, isolated_env: dict[str, str]
) -> None:
    missing = tmp_path / "typo" / "optuna.db"
    result = sweeplab_cli("best", f"sqlite:///{missing}", env=isolated_env)
    assert result.returncode == 1 and "There is no study storage at" in result.stderr
    assert not missing.exists() and not missing.parent.exists()

    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    optuna.create_study(study_name="real", storage=storage)
    unknown = sweeplab_cli("best", storage, "--study", "nope", env=isolated_env)
    assert unknown.returncode == 1 and "Traceback" not in unknown.stderr
    assert "holds no study 'nope'; it holds real" in unknown.stderr


def test_a_corrupt_results_file_or_a_wrong_study_is_one_paragraph(
    tmp_path: Path, isolated_env: dict[str, str]
) -> None:
    sweep_dir = tmp_path / "sweep"
    sweep_dir.mkdir()
    (sweep_dir / "optimization_results.yaml").write_text("study_name: s\nbest: [unclosed\n")
    corrupt = sweeplab_cli("best", str(sweep_dir), env=isolated_env)
    assert corrupt.returncode == 1 and "Traceback" not in corrupt.stderr, corrupt.stderr
    assert "optimization_results.yaml cannot be read" in corrupt.stderr
    (sweep_dir / "optimization_results.yaml").write_text("study_name: s\n")
    other = sweeplab_cli("best", str(sweep_dir), "--study", "t", env=isolated_env)
    assert other.returncode == 1 and "is study 's', not 't'" in other.stderr


def test_wandb_disabled_writes_no_run(
    fashion_dir: Path, tmp_path: Path, isolated_env: dict[str, str]
) -> None:
    env = {**isolated_env, "WANDB_MODE": "disabled"}
    result = run_entry(
        "train.py",
        "model=mlp",
        "trainer.max_epochs=1",
        "data.val_size=100",
        f"data.data_dir={fashion_dir}",
        env=env,
        log_dir=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert list(tmp_path.rglob("metrics.json")) and not list(tmp_path.rglob("*wandb*"))


@pytest.mark.parametrize("name", ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"])
def test_a_corrupt_test_file_fails_before_training(
    fashion_dir: Path, tmp_path: Path, isolated_env: dict[str, str], name: str
) -> None:
    data = tmp_path / "data"
    shutil.copytree(fashion_dir, data, ignore=shutil.ignore_patterns(".*"))
    (data / name).write_bytes((data / name).read_bytes()[:-40])  # truncated
    result = run_entry(
        "train.py", *RUN, f"data.data_dir={data}", env=isolated_env, log_dir=tmp_path / "logs"
    )
    assert result.returncode == 1, result.stderr[-2000:]
    assert name in result.stderr and "Traceback" not in result.stderr
    assert not list(tmp_path.rglob("*.ckpt"))


@pytest.mark.parametrize(
    ("argument", "message"),
    [
        (None, "`ckpt_path` is required"),
        ("ckpt_path={tmp}/missing.ckpt", "is not a file"),
        ("ckpt_path={tmp}/run/checkpoints/best.ckpt", "is not a readable Lightning checkpoint"),
        ("ckpt_path={tmp}/fake/checkpoints/best.ckpt seed=-3", "`seed`=-3 is invalid"),
        ("ckpt_path={tmp}/fake/checkpoints/best.ckpt", "is not the config of a training run"),
    ],
)
def test_eval_refuses_a_missing_or_corrupt_checkpoint(
    tmp_path: Path, isolated_env: dict[str, str], argument: str | None, message: str
) -> None:
    corrupt = tmp_path / "run" / "checkpoints" / "best.ckpt"
    corrupt.parent.mkdir(parents=True)
    corrupt.write_bytes(b"not a checkpoint")
    # a readable checkpoint whose run directory holds a config that is not a training run's
    fake = tmp_path / "fake" / "checkpoints" / "best.ckpt"
    fake.parent.mkdir(parents=True)
    torch.save({"state_dict": {}}, fake)
    (tmp_path / "fake" / ".hydra").mkdir()
    (tmp_path / "fake" / ".hydra" / "config.yaml").write_text("foo: 1\n")
    args = argument.format(tmp=tmp_path).split() if argument else []
    result = run_entry("eval.py", *args, env=isolated_env, log_dir=tmp_path / "logs")
    assert result.returncode == 1
    assert message in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("multirun", [False, True])
def test_an_unwritable_log_dir_is_one_paragraph(
    fashion_dir: Path, tmp_path: Path, isolated_env: dict[str, str], multirun: bool
) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    mode = ["-m", "hparams_search=mlp_optuna"] if multirun else []
    result = run_entry(
        "train.py",
        *mode,
        *RUN,
        f"data.data_dir={fashion_dir}",
        env=isolated_env,
        log_dir=blocker / "logs",
    )
    assert result.returncode == 1
    assert "is not writable (Not a directory)" in result.stderr
    assert "Traceback" not in result.stderr
