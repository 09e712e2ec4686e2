"""End-to-end: the README's commands on synthetic data, and the errors users meet."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import pytest
from hydra.errors import MissingConfigException
from omegaconf import OmegaConf, open_dict

from sweeplab import evaluate, train
from sweeplab.errors import ConfigError
from tests.conftest import run_entry
from tests.test_configs import compose_train

QUICK = ("data.val_size=100", "trainer.max_epochs=2", "callbacks.rich_progress_bar=null")


def _only_run_dir(log_dir: Path, name: str) -> Path:
    runs = list((log_dir / "runs" / name).iterdir())
    assert len(runs) == 1, runs
    return runs[0]


@pytest.mark.slow  # train.py and eval.py as processes
def test_train_then_eval_on_synthetic_data(
    fashion_dir: Path, tmp_path: Path, isolated_env: dict[str, str]
) -> None:
    logs = tmp_path / "logs"
    result = run_entry(
        "train.py",
        "model=cnn",
        f"data.data_dir={fashion_dir}",
        "logger=csv",
        *QUICK,
        env=isolated_env,
        log_dir=logs,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = _only_run_dir(logs, "cnn")
    saved = json.loads((run_dir / "metrics.json").read_text())
    metrics = saved["metrics"]
    # The synthetic classes are easy: a model that learns anything beats chance (0.1) by far.
    assert metrics["test/acc"] > 0.5 and metrics["val/acc_best"] > 0.5
    assert metrics["val/loss_best"] <= metrics["val/loss"] + 1e-6
    assert saved["optimized_metric"] == "val/acc_best" and saved["epochs"] == 2
    assert Path(saved["ckpt_path"]).is_file()
    assert set(saved["data_sha256"]) == {p.name for p in fashion_dir.glob("*.gz")}
    assert saved["environment"]["packages"]["pytorch-lightning"].startswith("2.6")
    assert saved["git_commit"]  # the tests run inside the repository
    assert (run_dir / ".hydra" / "config.yaml").is_file()
    assert (run_dir / ".hydra" / "overrides.yaml").is_file()
    assert "val/acc_best *" in result.stdout

    with (run_dir / "csv" / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["val/acc"] for r in rows if r.get("val/acc")], "val/acc never reached the logger"
    hparams = (run_dir / "csv" / "hparams.yaml").read_text()
    assert "model.net.filters:" in hparams and "model.optimizer.lr: 0.001" in hparams

    evaluated = run_entry(  # as the README shows it: the training run's data settings
        "eval.py", f"ckpt_path={saved['ckpt_path']}", env=isolated_env, log_dir=logs
    )
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    eval_record = json.loads((_only_run_dir(logs, "eval") / "metrics.json").read_text())
    assert eval_record["metrics"]["test/acc"] == pytest.approx(metrics["test/acc"])


def _run_in_process(fashion_dir: Path, out: Path, *overrides: str) -> dict:
    cfg = compose_train(
        f"data.data_dir={fashion_dir}",
        "logger=none",
        "trainer=cpu",
        "callbacks.rich_progress_bar=null",
        *QUICK,
        *overrides,
    )
    with open_dict(cfg):
        cfg.paths.output_dir = str(out)
    return train.run(cfg)


def test_same_seed_same_metrics(fashion_dir: Path, tmp_path: Path) -> None:
    a = _run_in_process(fashion_dir, tmp_path / "a", "seed=0")
    b = _run_in_process(fashion_dir, tmp_path / "b", "seed=0")
    c = _run_in_process(fashion_dir, tmp_path / "c", "seed=1")
    val = ("val/loss", "val/acc", "val/loss_best")
    assert [a["metrics"][k] for k in val] == [b["metrics"][k] for k in val]
    assert a["metrics"]["val/loss"] != c["metrics"]["val/loss"]  # seed=0 is a real seed
    assert (tmp_path / "a" / "metrics.json").is_file()


def test_train_then_eval_in_process(fashion_dir: Path, tmp_path: Path) -> None:
    """The fast twin of test_train_then_eval_on_synthetic_data: eval.py's task on the best
    checkpoint of a run trained in this process."""
    trained = _run_in_process(fashion_dir, tmp_path / "run", "trainer.max_epochs=1")
    assert trained["epochs"] == 1 and Path(trained["ckpt_path"]).is_file()
    # Hydra would have saved the run's config there: eval rebuilds the model from it
    saved = compose_train(
        f"data.data_dir={fashion_dir}", "logger=none", "trainer=cpu", *QUICK, "trainer.max_epochs=1"
    )
    (tmp_path / "run" / ".hydra").mkdir()
    OmegaConf.save(saved, tmp_path / "run" / ".hydra" / "config.yaml", resolve=True)
    cfg = compose_train(f"ckpt_path={trained['ckpt_path']}", config_name="eval")
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path / "eval")
    (tmp_path / "eval").mkdir()  # as Hydra makes the run's directory
    evaluated = evaluate.run(cfg)
    assert evaluated["metrics"]["test/acc"] == pytest.approx(trained["metrics"]["test/acc"])
    assert evaluated["data_sha256"] == trained["data_sha256"]
    assert (tmp_path / "eval" / "metrics.json").is_file()


def test_seeds_train_each_seed_and_return_their_mean(fashion_dir: Path, tmp_path: Path) -> None:
    """train.py's task with seeds=2, in this process: a run per seed and their summary."""
    cfg = compose_train(
        f"data.data_dir={fashion_dir}",
        "logger=none",
        "trainer=cpu",
        *QUICK,
        "trainer.max_epochs=1",
        "seeds=2",
        "seed=7",
    )
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path)
    value = train.main(cfg)
    summary = json.loads((tmp_path / "seeds.json").read_text())
    assert summary["seeds"] == [7, 8] and len(summary["metrics"]["val/acc_best"]["values"]) == 2
    assert value == pytest.approx(summary["metrics"]["val/acc_best"]["mean"])
    for seed in (7, 8):
        assert json.loads((tmp_path / f"seed_{seed}" / "metrics.json").read_text())["seed"] == seed


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("model.net.hidden_units=[50]", "hidden_dropout has 0"),
        ("model.optimizer.lr=-1", "model.optimizer"),
        ("data.train_subset=70000", "data.train_subset=70000 is impossible"),
        ("trainer.max_epochs=0", "trainer.max_epochs"),
        ("optimized_metric=val/f1", "val/f1"),
    ],
)
def test_bad_config_is_one_clear_error(
    fashion_dir: Path, tmp_path: Path, override: str, expected: str
) -> None:
    with pytest.raises(ConfigError, match=expected.replace("[", r"\[")):
        result = _run_in_process(fashion_dir, tmp_path, override)
        train.objective(result)


def test_dropout_out_of_range_names_the_key(fashion_dir: Path, tmp_path: Path) -> None:
    overrides = ("model.net.hidden_units=[50]", "model.net.hidden_dropout=[1.5]")
    with pytest.raises(ConfigError, match=r"model.net.*hidden_dropout\[0\]=1.5"):
        _run_in_process(fashion_dir, tmp_path, *overrides)


def test_unknown_optimizer_lists_the_options() -> None:
    with pytest.raises(MissingConfigException, match="adamw"):
        compose_train("model/optimizer=lamb")


@pytest.mark.slow  # train.py as a process
def test_negative_layer_size_exits_with_a_paragraph(
    fashion_dir: Path, tmp_path: Path, isolated_env: dict[str, str]
) -> None:
    result = run_entry(
        "train.py",
        "model.net.units=-5",
        f"data.data_dir={fashion_dir}",
        "logger=none",
        env=isolated_env,
        log_dir=tmp_path,
    )
    assert result.returncode == 1
    assert "Invalid config at `model.net`" in result.stderr and "units=-5" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


@pytest.mark.slow  # train.py as a process
def test_missing_data_dir_fails_fast_without_traceback(
    tmp_path: Path, isolated_env: dict[str, str]
) -> None:
    started = time.monotonic()
    result = run_entry(
        "train.py",
        f"data.data_dir={tmp_path / 'nowhere'}",
        env=isolated_env,
        log_dir=tmp_path / "logs",
        timeout=60,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 1
    assert elapsed < 10, f"took {elapsed:.1f}s"
    message = result.stderr
    assert "Traceback" not in message + result.stdout
    for needed in (
        "nowhere",
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
        "data.data_dir=",
        "FASHION_MNIST_DIR",
    ):
        assert needed in message
    assert not list((tmp_path / "logs").rglob("wandb")), "a W&B run was started for nothing"
