"""The prepared benchmark scripts start; the GPU one says clearly why it cannot run here."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch

from tests.conftest import ROOT

# Every test here runs a benchmark script as a process (python or bash): CI only.
pytestmark = pytest.mark.slow


def this_python_first(env: dict[str, str]) -> dict[str, str]:
    """``env`` with this interpreter's directory first on PATH: the bash benchmarks call
    ``python``, which must be the one running the tests (with sweeplab installed)."""
    return dict(env, PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]))


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here: the script would run")
def test_gpu_benchmark_refuses_a_machine_without_a_gpu(tmp_path: Path) -> None:
    done = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu.sh"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        env=this_python_first(dict(os.environ)),
    )
    assert done.returncode == 1
    assert "benchmarks/gpu.sh needs a CUDA GPU" in done.stderr and "Traceback" not in done.stderr


def test_resnet_benchmark_runs_with_a_tiny_budget(
    fashion_dir: Path, tmp_path: Path, isolated_env: dict[str, str]
) -> None:
    """benchmarks/resnet.sh as written, with budgets small enough for a test."""
    budget = dict(
        TRIALS="2",
        SWEEP_EPOCHS="1",
        SUBSET="100",
        EPOCHS="1",
        SEEDS="1",
        OVERRIDES="data.val_size=100",
    )
    done = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "resnet.sh"), str(fashion_dir)],
        capture_output=True,
        text=True,
        timeout=600,
        env=this_python_first(dict(isolated_env, LOGS=str(tmp_path / "logs"), **budget)),
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert "resnet_sweep:" in done.stdout and "| bench_resnet_best | 1 |" in done.stdout
    assert "No finished CNN sweep" in done.stdout


def test_pareto_benchmark_runs_with_a_tiny_budget(
    fashion_dir: Path, tmp_path: Path, isolated_env: dict[str, str]
) -> None:
    """benchmarks/pareto.sh as written, with a budget small enough for a test."""
    budget = dict(TRIALS="3", EPOCHS="1", SUBSET="100", OVERRIDES="data.val_size=100")
    budget["LOGS"] = str(tmp_path / "logs")
    done = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "pareto.sh"), str(fashion_dir)],
        capture_output=True,
        text=True,
        timeout=600,
        env=this_python_first(dict(isolated_env, **budget)),
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert "| trial | parameters | val acc (best) |" in done.stdout
    assert "single-objective winner (val_acc): trial" in done.stdout


def run_python(arguments: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [sys.executable, *arguments], capture_output=True, text=True, timeout=300, cwd=ROOT, env=env
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_pool_order_benchmark_runs(isolated_env: dict[str, str]) -> None:
    arguments = ["benchmarks/pool_order.py", "--batch-sizes", "8", "--repeats", "2", "--steps", "5"]
    out = run_python(arguments, isolated_env).stdout
    assert out.count("batch 8, ") == 2 and "ratio" in out


def test_conditional_overhead_benchmark_runs(
    fashion_dir: Path, isolated_env: dict[str, str]
) -> None:
    arguments = ["benchmarks/conditional_overhead.py", "--data-dir", str(fashion_dir)]
    out = run_python([*arguments, "--trials", "3", "--rounds", "1"], isolated_env).stdout
    assert "| cnn_optuna |" in out and "| arch_optuna |" in out


def test_epoch_time_benchmark_runs(fashion_dir: Path, isolated_env: dict[str, str]) -> None:
    arguments = ["benchmarks/epoch_time.py", "--data-dir", str(fashion_dir)]
    arguments += ["--experiments", "mlp_baseline", "--batch-sizes", "64", "--epochs", "2"]
    out = run_python([*arguments, "--overrides", "data.val_size=100"], isolated_env).stdout
    assert "mlp_baseline, batch 64: sweeplab" in out and "ratio" in out


def test_lightning_floor_benchmark_runs(fashion_dir: Path, isolated_env: dict[str, str]) -> None:
    arguments = ["benchmarks/lightning_floor.py", "--data-dir", str(fashion_dir), "--epochs", "2"]
    arguments += ["--batch-size", "64", "--overrides", "data.val_size=100"]
    out = run_python(arguments, isolated_env).stdout
    for side in ("sweeplab", "sweeplab, stock hooks", "Lightning barebones", "plain PyTorch"):
        assert f"mlp_baseline, batch 64, {side}: " in out


def test_trial_overhead_benchmark_compares_with_a_commit(
    fashion_dir: Path, isolated_env: dict[str, str]
) -> None:
    arguments = ["benchmarks/trial_overhead.py", "--data-dir", str(fashion_dir), "--trials", "1"]
    arguments += ["--against", "HEAD", "--rounds", "1", "--overrides", "data.val_size=100"]
    arguments += ["trainer.max_epochs=1"]
    worktrees = ["git", "-C", str(ROOT), "worktree", "list"]
    before = subprocess.run(worktrees, capture_output=True, check=True).stdout
    out = run_python(arguments, isolated_env).stdout
    for side in ("HEAD", "this tree"):
        assert f"round 1, {side}: 1 trained trials, wall " in out and "engine ratio" in out
    # the temporary checkout is gone
    assert subprocess.run(worktrees, capture_output=True, check=True).stdout == before


# The reference study's stack, as the issue measured it; Keras Tuner imports tensorboard.
KERAS_STACK = ("tensorflow-cpu==2.21.0", "keras-tuner[bayesian]==1.4.8", "tensorboard")


@pytest.fixture(scope="module")
def keras_python() -> str:
    """A Python with TensorFlow and Keras Tuner in its own virtual environment (TensorFlow
    needs NumPy 2, sweeplab's dev tools NumPy 1): $KERAS_PYTHON, else one made in the temp
    directory and kept for the next run."""
    if os.environ.get("KERAS_PYTHON"):
        return os.environ["KERAS_PYTHON"]
    venv = Path(tempfile.gettempdir()) / "sweeplab-keras-venv"
    python, made = venv / "bin" / "python", venv / "made"
    if not made.exists() or made.read_text() != " ".join(KERAS_STACK):
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        install = [str(python), "-m", "pip", "install", "--quiet", *KERAS_STACK]
        done = subprocess.run(install, capture_output=True, text=True, timeout=900)
        if done.returncode:
            pytest.skip(f"{' '.join(KERAS_STACK)} could not be installed:\n{done.stderr[-2000:]}")
        made.write_text(" ".join(KERAS_STACK))
    return str(python)


def test_keras_epoch_benchmark_runs(
    fashion_dir: Path, isolated_env: dict[str, str], keras_python: str
) -> None:
    arguments = ["benchmarks/keras_epoch.py", "--data-dir", str(fashion_dir), "--epochs", "2"]
    arguments += ["--keras-python", keras_python, "--experiments", "mlp_baseline", "cnn_baseline"]
    out = run_python([*arguments, "--overrides", "data.val_size=100"], isolated_env).stdout
    assert "ready: TensorFlow 2.21.0" in out
    for experiment in ("mlp_baseline", "cnn_baseline"):
        assert f"{experiment}, batch 32: sweeplab " in out and "Keras/TensorFlow" in out


def test_sweep_against_keras_tuner_runs(
    fashion_dir: Path, isolated_env: dict[str, str], keras_python: str
) -> None:
    arguments = ["benchmarks/sweep_vs_keras_tuner.py", "--data-dir", str(fashion_dir)]
    arguments += ["--keras-python", keras_python, "--trials", "2", "--epochs", "1"]
    arguments += ["--rounds", "1", "--overrides", "data.val_size=100"]
    out = run_python(arguments, isolated_env).stdout
    assert "round 1, Keras Tuner: 2 trials in " in out
    assert "round 1, sweeplab: 2 trials in " in out and "median wall: sweeplab" in out
