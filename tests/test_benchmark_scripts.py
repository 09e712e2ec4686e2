"""The prepared benchmark scripts start; the GPU one says clearly why it cannot run here."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import torch

from tests.conftest import ROOT


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here: the script would run")
def test_gpu_benchmark_refuses_a_machine_without_a_gpu(tmp_path: Path) -> None:
    done = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu.sh"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert "benchmarks/gpu.sh needs a CUDA GPU" in done.stderr and "Traceback" not in done.stderr
