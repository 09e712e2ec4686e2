from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from tests.idx_files import write_fashion_mnist
from tests.services import postgres, slurm  # noqa: F401  (fixtures: real servers)

ROOT = Path(__file__).resolve().parents[1]
# The real Fashion-MNIST for the tests that use it: FASHION_MNIST_DIR, else ../shared next to
# the repository (CI's layout).
REAL_DATA = Path(os.environ.get("FASHION_MNIST_DIR") or ROOT.parent / "shared" / "fashion-mnist")


@pytest.fixture(scope="session")
def fashion_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small learnable synthetic Fashion-MNIST (600 train, 200 test images)."""
    return write_fashion_mnist(tmp_path_factory.mktemp("fashion-mnist"))


@pytest.fixture
def data_in_env(fashion_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The synthetic data as FASHION_MNIST_DIR, for in-process sweeps, which check it."""
    monkeypatch.setenv("FASHION_MNIST_DIR", str(fashion_dir))


@pytest.fixture
def isolated_env(tmp_path: Path) -> dict[str, str]:
    """Environment for entry-point runs: no W&B credentials, no user cache, logs in tmp."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "FASHION_"))}
    env.update(HOME=str(tmp_path / "home"), XDG_CACHE_HOME=str(tmp_path / "cache"))
    return env


def run_entry(
    script: str,
    *overrides: str,
    env: dict[str, str],
    log_dir: Path,
    timeout: float = 300,
    stops_after_work: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run ``python <script> overrides...`` from the repository root, logs under ``log_dir``.

    A command refused with sweeplab's one paragraph (status 1) must leave nothing under
    ``log_dir`` that was not there before: checked for every test, except those that expect
    the command to stop with that paragraph after some work, which it keeps.
    """
    caches = [Path(env[k]) for k in ("HOME", "XDG_CACHE_HOME") if k in env]  # a user's own
    before = _tree(log_dir, caches)
    result = subprocess.run(
        [sys.executable, str(ROOT / script), f"paths.log_dir={log_dir}", *overrides],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if result.returncode == 1 and "\nError: " in f"\n{result.stderr}" and not stops_after_work:
        assert _tree(log_dir, caches) == before, f"a refused command left: {result.stderr}"
    return result


def _tree(root: Path, leave_out: list[Path]) -> set[Path]:
    if not root.exists():
        return set()
    found = {root, *root.rglob("*")}
    return {p for p in found if not any(p.is_relative_to(c) for c in leave_out)}


def inspect_wandb_run(run_dir: Path, env: dict[str, str]) -> dict:
    """A W&B run's state, config and summary, read back with wandb's own tool."""
    inspected = subprocess.run(
        [sys.executable, "-m", "wandb", "leet", "inspect", "--summary", "--json", str(run_dir)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert inspected.returncode == 0, inspected.stderr
    return json.loads(inspected.stdout)


def sweeplab_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sweeplab.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


QUICK = ("data.val_size=100", "callbacks.rich_progress_bar=null", "hydra.sweeper.sampler.seed=0")


def sweep(
    fashion_dir: Path,
    logs: Path,
    env: dict[str, str],
    *overrides: str,
    timeout: float = 600,
    stops_after_work: bool = False,
):
    return run_entry(
        "train.py",
        "-m",
        f"data.data_dir={fashion_dir}",
        *QUICK,
        *overrides,
        env=env,
        log_dir=logs,
        timeout=timeout,
        stops_after_work=stops_after_work,
    )


def load_study(sweep_dir: Path) -> optuna.Study:
    return optuna.load_study(
        study_name=sweep_dir.name, storage=f"sqlite:///{sweep_dir / 'optuna.db'}"
    )


def readme_commands(heading: str) -> list[list[str]]:
    """The ``python train.py -m ...`` commands of the README section under ``heading`` (its
    bash blocks, continuation lines joined), each as the overrides after ``-m``: tests run
    what the README shows, so the two cannot drift apart."""
    text = (ROOT / "README.md").read_text()
    section = re.split(r"\n##+ ", text.split(f"\n{heading}\n", 1)[1], maxsplit=1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, flags=re.DOTALL)
    lines = "\n".join(blocks).replace("\\\n", " ").splitlines()
    commands = [shlex.split(line) for line in lines if line.startswith("python train.py -m ")]
    return [words[3:] for words in commands]
