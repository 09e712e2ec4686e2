"""How local workers share out GPUs and CPU cores (sweep/workers.py)."""

from __future__ import annotations

import pytest

from sweeplab.sweep.workers import WORKER_ENV, local_environments


def test_each_worker_gets_its_own_gpu_or_a_share_of_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    envs = local_environments(workers=2, workers_per_gpu=1)
    assert [e["CUDA_VISIBLE_DEVICES"] for e in envs] == ["3", "5"]
    assert [e[WORKER_ENV] for e in envs] == ["0", "1"]
    shared = local_environments(workers=4, workers_per_gpu=2)
    assert [e["CUDA_VISIBLE_DEVICES"] for e in shared] == ["3", "3", "5", "5"]
    forced = local_environments(workers=5, workers_per_gpu=2)  # force_workers: in turn
    assert [e["CUDA_VISIBLE_DEVICES"] for e in forced] == ["3", "3", "5", "5", "3"]


def test_without_gpus_the_cores_are_shared_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    envs = local_environments(workers=3, workers_per_gpu=1)
    assert [e["OMP_NUM_THREADS"] for e in envs] == ["2", "2", "2"]
    assert all(e["CUDA_VISIBLE_DEVICES"] == "" for e in envs)
    assert local_environments(workers=16, workers_per_gpu=1)[0]["OMP_NUM_THREADS"] == "1"
