"""An architecture from the user's own package and config directory, outside sweeplab: a
single run, a sweep over its own space, best_of and eval.py, as the README shows them."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path

import pytest

from sweeplab.record import git_commit
from tests.conftest import QUICK, run_entry

RESNET = """
import torch
from torch import nn


class Block(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.body(x))


class TinyRes(nn.Module):
    def __init__(self, input_shape=(1, 28, 28), num_classes=10, channels=8, blocks=1):
        super().__init__()
        if channels < 1:
            raise ValueError(f"channels={channels} is invalid: use a positive integer.")
        self.stem = nn.Sequential(
            nn.Conv2d(input_shape[0], channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
        )
        self.blocks = nn.Sequential(*[Block(channels) for _ in range(blocks)])
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))
"""

MODEL_YAML = """
defaults:
  - classifier
  - _self_

net:
  _target_: myarch.tinyres.TinyRes
  input_shape: [1, 28, 28]
  num_classes: ${..num_classes}
  channels: 8
  blocks: 1
"""

SEARCH_YAML = """
# @package _global_
defaults:
  - optuna
  - override /model: tinyres

name: tinyres_optuna

hydra:
  sweeper:
    params:
      model.net.channels: choice(4, 8)
      # continuous: two trials never repeat (a repeat would reuse its twin, not train)
      model.optimizer.lr: tag(log, interval(0.0005, 0.05))
"""


@pytest.fixture
def user_dir(tmp_path: Path) -> Path:
    """The user's own repository: a package and a config directory, outside sweeplab."""
    root = tmp_path / "my_research"
    (root / "myarch").mkdir(parents=True)
    (root / "myarch" / "__init__.py").write_text("")
    (root / "myarch" / "tinyres.py").write_text(textwrap.dedent(RESNET))
    for path, text in (
        ("configs/model/tinyres.yaml", MODEL_YAML),
        ("configs/hparams_search/tinyres_optuna.yaml", SEARCH_YAML),
    ):
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text.lstrip())
    return root


@pytest.mark.slow  # train.py and eval.py as processes
def test_an_architecture_from_the_user_s_package(
    user_dir: Path, fashion_dir: Path, tmp_path: Path, isolated_env: dict[str, str]
) -> None:
    logs = tmp_path / "logs"
    # the user's package first, without hiding a PYTHONPATH the tests run under
    path = os.pathsep.join(filter(None, [str(user_dir), isolated_env.get("PYTHONPATH")]))
    env = {**isolated_env, "PYTHONPATH": path, "SWEEPLAB_TRUSTED": "myarch"}
    common = (
        f"hydra.searchpath=[file://{user_dir}/configs]",
        f"data.data_dir={fashion_dir}",
        "trainer.max_epochs=1",
        "logger=none",
        *QUICK[:2],
    )

    single = run_entry("train.py", "model=tinyres", *common, env=env, log_dir=logs)
    assert single.returncode == 0, single.stderr[-3000:]
    [run_dir] = (logs / "runs" / "tinyres").iterdir()
    assert "test/acc" in json.loads((run_dir / "metrics.json").read_text())["metrics"]

    untrusted = {k: v for k, v in env.items() if k != "SWEEPLAB_TRUSTED"}
    refused = run_entry("train.py", "model=tinyres", *common, env=untrusted, log_dir=logs)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "`model.net._target_`='myarch.tinyres.TinyRes' is not trusted" in refused.stderr
    assert "SWEEPLAB_TRUSTED=myarch" in refused.stderr

    sweep = run_entry(
        "train.py",
        "-m",
        "hparams_search=tinyres_optuna",
        "hydra.sweeper.n_trials=2",
        *common,
        env=env,
        log_dir=logs,
    )
    assert sweep.returncode == 0, sweep.stderr[-3000:]
    sweep_dir = logs / "sweeps" / "tinyres_optuna"
    assert len(list(sweep_dir.glob("trial_*/metrics.json"))) == 2

    # best_of carries the search path itself: no need to repeat it
    best = run_entry(
        "train.py",
        f"best_of={sweep_dir}",
        f"data.data_dir={fashion_dir}",
        *QUICK[:2],
        env=env,
        log_dir=logs,
    )
    assert best.returncode == 0, best.stderr[-3000:]
    [best_dir] = (logs / "runs" / "tinyres_optuna_best").iterdir()
    ckpt = best_dir / "checkpoints" / "best.ckpt"
    assert ckpt.is_file()

    evaluated = run_entry(
        "eval.py", f"ckpt_path={ckpt}", f"data.data_dir={fashion_dir}", env=env, log_dir=logs
    )
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    assert "test/acc=" in evaluated.stdout


def test_untracked_files_make_the_recorded_commit_dirty(tmp_path: Path) -> None:
    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "train.py").write_text("")
    git("add", "train.py")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x")
    assert not git_commit(tmp_path).endswith("-dirty")
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "new_model.yaml").write_text("net: {}\n")
    assert git_commit(tmp_path).endswith("-dirty")
