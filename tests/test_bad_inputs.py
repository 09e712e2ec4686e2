"""Bad input is refused before training with one paragraph that names the key and the fix,
without a traceback; reading a storage never creates one; WANDB_MODE=disabled writes nothing."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
import torch
from omegaconf import DictConfig, open_dict

from sweeplab import evaluate, train
from sweeplab.outputs import WritableOutputs
from tests.conftest import run_entry, sweeplab_cli
from tests.test_configs import compose_train

RUN = ("model=mlp", "trainer.max_epochs=1", "data.val_size=100", "logger=none")


BAD_VALUE_CASES = [
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
]
BAD_VALUES = pytest.mark.parametrize(("overrides", "message"), BAD_VALUE_CASES)


def one_of_each(cases: list, first_arguments: tuple) -> list:
    """The cases whose first argument is one of ``first_arguments``: the process tests run
    one case of each way a refusal is reached (each starts Python, torch and Lightning, about
    7 s on 2 cores), while the in-process twins below run every case."""
    chosen = [c for c in cases if (c.values if hasattr(c, "values") else c)[0] in first_arguments]
    assert len(chosen) == len(first_arguments), "a chosen case is not in the list"
    return chosen


# sweeplab's value checks, a metric the run does not log, Hydra's own validation, a value that
# cannot be read, and a search config run without -m
PROCESS_BAD_VALUES = pytest.mark.parametrize(
    ("overrides", "message"),
    one_of_each(
        BAD_VALUE_CASES,
        (
            "seeds=0",
            "monitor=val/f1",
            "trainer.devices=0",
            "model.optimizer.lr=${nope}",
            "hparams_search=mlp_optuna",
        ),
    ),
)


@PROCESS_BAD_VALUES
@pytest.mark.slow  # train.py as a process; test_a_bad_value_is_refused_in_process has every case
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


BAD_ENVIRONMENT_CASES = [
    ({"WANDB_MODE": "banana"}, ["logger=wandb"], "WANDB_MODE='banana' is invalid"),
    ({"SWEEPLAB_TRUSTED": "*"}, [], "SWEEPLAB_TRUSTED holds '*', which is not a module"),
    (
        {"SWEEPLAB_TRUSTED": "collections"},
        ["model.net._target_=collections.OrderedDict"],
        "is not a torch.nn.Module",
    ),
]
BAD_ENVIRONMENTS = pytest.mark.parametrize(("env", "overrides", "message"), BAD_ENVIRONMENT_CASES)


# a logger's setting, and a trusted package's object that is not what the config needs
@pytest.mark.parametrize(
    ("env", "overrides", "message"),
    one_of_each(
        BAD_ENVIRONMENT_CASES, ({"WANDB_MODE": "banana"}, {"SWEEPLAB_TRUSTED": "collections"})
    ),
)
@pytest.mark.slow  # train.py as a process; test_a_bad_environment_is_refused_in_process: all
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


@pytest.mark.slow  # the CLI as a process
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


@pytest.mark.slow  # the CLI as a process
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


@pytest.mark.slow  # train.py as a process
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


@pytest.mark.slow  # train.py as a process; test_a_corrupt_test_file_is_refused_in_process: both
def test_a_corrupt_test_file_fails_before_training(
    fashion_dir: Path, tmp_path: Path, isolated_env: dict[str, str]
) -> None:
    name = "t10k-images-idx3-ubyte.gz"
    data = tmp_path / "data"
    shutil.copytree(fashion_dir, data, ignore=shutil.ignore_patterns(".*"))
    (data / name).write_bytes((data / name).read_bytes()[:-40])  # truncated
    result = run_entry(
        "train.py", *RUN, f"data.data_dir={data}", env=isolated_env, log_dir=tmp_path / "logs"
    )
    assert result.returncode == 1, result.stderr[-2000:]
    assert name in result.stderr and "Traceback" not in result.stderr
    assert not list(tmp_path.rglob("*.ckpt"))


BAD_CHECKPOINT_CASES = [
    (None, "`ckpt_path` is required"),
    ("ckpt_path={tmp}/missing.ckpt", "is not a file"),
    ("ckpt_path={tmp}/run/checkpoints/best.ckpt", "is not a readable Lightning checkpoint"),
    ("ckpt_path={tmp}/fake/checkpoints/best.ckpt seed=-3", "`seed`=-3 is invalid"),
    ("ckpt_path={tmp}/fake/checkpoints/best.ckpt", "is not the config of a training run"),
]
BAD_CHECKPOINTS = pytest.mark.parametrize(("argument", "message"), BAD_CHECKPOINT_CASES)


def checkpoints(tmp_path: Path) -> None:
    """A corrupt checkpoint in run/, and in fake/ a readable one whose run directory holds a
    config that is not a training run's."""
    corrupt = tmp_path / "run" / "checkpoints" / "best.ckpt"
    corrupt.parent.mkdir(parents=True)
    corrupt.write_bytes(b"not a checkpoint")
    fake = tmp_path / "fake" / "checkpoints" / "best.ckpt"
    fake.parent.mkdir(parents=True)
    torch.save({"state_dict": {}}, fake)
    (tmp_path / "fake" / ".hydra").mkdir()
    (tmp_path / "fake" / ".hydra" / "config.yaml").write_text("foo: 1\n")


# a missing argument, and a file that is not a checkpoint
@pytest.mark.parametrize(
    ("argument", "message"),
    one_of_each(BAD_CHECKPOINT_CASES, (None, "ckpt_path={tmp}/run/checkpoints/best.ckpt")),
)
@pytest.mark.slow  # eval.py as a process; test_eval_refuses_a_bad_checkpoint_in_process: all
def test_eval_refuses_a_missing_or_corrupt_checkpoint(
    tmp_path: Path, isolated_env: dict[str, str], argument: str | None, message: str
) -> None:
    checkpoints(tmp_path)
    args = argument.format(tmp=tmp_path).split() if argument else []
    result = run_entry("eval.py", *args, env=isolated_env, log_dir=tmp_path / "logs")
    assert result.returncode == 1
    assert message in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow  # train.py as a process
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


# -- the same refusals in this process (the fast loop): the entry points' functions on a
# config composed as train.py and eval.py compose it, with the paragraph they exit with.


@pytest.fixture
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As ``isolated_env`` for a process: no W&B or data settings, the cache in tmp."""
    for key in [k for k in os.environ if k.startswith(("WANDB_", "FASHION_", "SWEEPLAB_"))]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def exit_paragraph(
    entry: Callable[[DictConfig], object], cfg: DictConfig, capsys: pytest.CaptureFixture[str]
) -> str:
    """What ``entry(cfg)`` prints as it exits with status 1 (a failure if it does not)."""
    with pytest.raises(SystemExit) as exited:
        entry(cfg)
    assert exited.value.code == 1
    return capsys.readouterr().err


def refused_run(tmp_path: Path, capsys: pytest.CaptureFixture[str], *overrides: str) -> str:
    cfg = compose_train(*overrides)
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path / "run")
    stderr = exit_paragraph(train.main, cfg, capsys)
    assert not list(tmp_path.rglob("*.ckpt"))  # no epoch was trained
    return stderr


@BAD_VALUES
def test_a_bad_value_is_refused_in_process(
    fashion_dir: Path,
    tmp_path: Path,
    clean_env: None,
    capsys: pytest.CaptureFixture[str],
    overrides: str,
    message: str,
) -> None:
    data = f"data.data_dir={fashion_dir}"
    assert message in refused_run(tmp_path, capsys, *RUN, data, *overrides.split())


@BAD_ENVIRONMENTS
def test_a_bad_environment_is_refused_in_process(
    fashion_dir: Path,
    tmp_path: Path,
    clean_env: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    env: dict[str, str],
    overrides: list[str],
    message: str,
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    data = f"data.data_dir={fashion_dir}"
    assert message in refused_run(tmp_path, capsys, *RUN[:-1], data, *overrides)


@pytest.mark.parametrize("name", ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"])
def test_a_corrupt_test_file_is_refused_in_process(
    fashion_dir: Path,
    tmp_path: Path,
    clean_env: None,
    capsys: pytest.CaptureFixture[str],
    name: str,
) -> None:
    data = tmp_path / "data"
    shutil.copytree(fashion_dir, data, ignore=shutil.ignore_patterns(".*"))
    (data / name).write_bytes((data / name).read_bytes()[:-40])  # truncated
    assert name in refused_run(tmp_path, capsys, *RUN, f"data.data_dir={data}")


@BAD_CHECKPOINTS
def test_eval_refuses_a_bad_checkpoint_in_process(
    tmp_path: Path,
    clean_env: None,
    capsys: pytest.CaptureFixture[str],
    argument: str | None,
    message: str,
) -> None:
    checkpoints(tmp_path)
    args = argument.format(tmp=tmp_path).split() if argument else []
    cfg = compose_train(*args, config_name="eval")
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path / "eval")
    assert message in exit_paragraph(evaluate.main, cfg, capsys)


def test_an_unwritable_log_dir_is_refused_before_hydra_makes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The Hydra callback train.py and eval.py run before Hydra creates the run's directory."""
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    config = DictConfig({"paths": {"log_dir": str(blocker / "logs")}})
    stderr = exit_paragraph(WritableOutputs().on_run_start, config, capsys)
    assert "is not writable (Not a directory)" in stderr
    sweep = DictConfig({"hydra": {"sweep": {"dir": str(blocker / "sweeps" / "s")}}})
    assert "is not writable" in exit_paragraph(WritableOutputs().on_multirun_start, sweep, capsys)
    WritableOutputs().on_run_start(DictConfig({"paths": {"log_dir": str(tmp_path / "ok")}}))
    assert not (tmp_path / "ok").exists()  # checked, not made: Hydra makes it if the run starts
