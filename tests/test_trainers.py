"""The Trainer factory of the trainer configs (sweeplab.trainers): precision selection with its
fp32 fallback, the free profiler, and only Trainer arguments from the configs."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
import torch
from pytorch_lightning.profilers import SimpleProfiler

from sweeplab import build, trainers
from tests.test_configs import compose_train


def cpuinfo(tmp_path: Path, flags: str) -> Path:
    tmp_path.mkdir()
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\nflags\t\t: fpu sse2 avx2 {flags}\n")
    return path


def test_native_bf16_is_read_from_the_cpu_flags(tmp_path: Path) -> None:
    assert trainers.cpu_has_native_bf16(cpuinfo(tmp_path / "a", "avx512f avx512_bf16"))
    assert trainers.cpu_has_native_bf16(cpuinfo(tmp_path / "b", "amx_bf16 amx_tile"))
    assert not trainers.cpu_has_native_bf16(cpuinfo(tmp_path / "c", "avx512f"))
    assert not trainers.cpu_has_native_bf16(tmp_path / "missing")


@pytest.mark.parametrize(("native", "expected"), [(True, "bf16-mixed"), (False, "32-true")])
def test_auto_precision_on_cpu_falls_back_to_fp32_without_native_bf16(
    monkeypatch: pytest.MonkeyPatch, native: bool, expected: str
) -> None:
    monkeypatch.setattr(trainers, "cpu_has_native_bf16", lambda: native)
    assert trainers.auto_precision("cpu") == expected
    assert str(trainers.trainer(accelerator="cpu", logger=False).precision) == expected
    assert str(trainers.trainer(precision="32-true", accelerator="cpu").precision) == "32-true"


@pytest.mark.parametrize(("bf16", "expected"), [(True, "bf16-mixed"), (False, "16-mixed")])
def test_auto_precision_on_gpu(monkeypatch: pytest.MonkeyPatch, bf16: bool, expected: str) -> None:
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: bf16)
    assert trainers.auto_precision("gpu") == expected


def test_trainers_get_the_free_profiler_unless_one_is_asked_for() -> None:
    default = trainers.trainer(accelerator="cpu", logger=False)
    assert isinstance(default.profiler, trainers.NoProfiler)
    with default.profiler.profile("[Callback]ModelCheckpoint.on_train_batch_end"):
        pass
    asked = trainers.trainer(accelerator="cpu", logger=False, profiler="simple")
    assert isinstance(asked.profiler, SimpleProfiler)


def test_the_factory_gets_the_trainer_config_without_its_process_settings() -> None:
    profiler = "+trainer.profiler._target_=pytorch_lightning.profilers.SimpleProfiler"
    cfg = compose_train("trainer=cpu", profiler)
    arguments = trainers.without_process_settings(cfg.trainer)
    assert "keep_freed_memory" not in arguments
    assert cfg.trainer.keep_freed_memory is True  # the run's config, as logged, keeps it
    assert arguments.default_root_dir == cfg.paths.output_dir  # interpolations resolved
    trainer = build.instantiate(arguments, "trainer", logger=False)
    assert isinstance(trainer.profiler, SimpleProfiler)


def test_a_checkpoint_cut_short_leaves_the_previous_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk (ENOSPC halfway through the write) keeps the last whole best.ckpt and
    leaves no temporary file."""
    io = trainers.AtomicCheckpointIO()
    path = tmp_path / "best.ckpt"
    io.save_checkpoint({"epoch": 1}, path)

    def disk_full(io: object, checkpoint: object, target: object, *args: object) -> None:
        Path(str(target)).write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(trainers.TorchCheckpointIO, "save_checkpoint", disk_full)
    with pytest.raises(OSError, match="No space"):
        io.save_checkpoint({"epoch": 2}, path)
    monkeypatch.undo()
    assert io.load_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["best.ckpt"]


def test_trainers_write_checkpoints_atomically() -> None:
    trainer = trainers.trainer(accelerator="cpu", logger=False, enable_progress_bar=False)
    assert isinstance(trainer.strategy.checkpoint_io, trainers.AtomicCheckpointIO)
