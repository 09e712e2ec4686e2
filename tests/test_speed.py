"""The fast path's switches (sweeplab.speed): precision selection with its fp32 fallback,
channels-last weights, and results that stay correct."""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from pytorch_lightning.profilers import SimpleProfiler

from sweeplab import speed
from sweeplab.models.classifier import Classifier
from sweeplab.models.cnn import CNN
from sweeplab.models.mlp import MLP


def cpuinfo(tmp_path: Path, flags: str) -> Path:
    tmp_path.mkdir()
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\nflags\t\t: fpu sse2 avx2 {flags}\n")
    return path


def test_native_bf16_is_read_from_the_cpu_flags(tmp_path: Path) -> None:
    assert speed.cpu_has_native_bf16(cpuinfo(tmp_path / "a", "avx512f avx512_bf16"))
    assert speed.cpu_has_native_bf16(cpuinfo(tmp_path / "b", "amx_bf16 amx_tile"))
    assert not speed.cpu_has_native_bf16(cpuinfo(tmp_path / "c", "avx512f"))
    assert not speed.cpu_has_native_bf16(tmp_path / "missing")


@pytest.mark.parametrize(("native", "expected"), [(True, "bf16-mixed"), (False, "32-true")])
def test_auto_precision_on_cpu_falls_back_to_fp32_without_native_bf16(
    monkeypatch: pytest.MonkeyPatch, native: bool, expected: str
) -> None:
    monkeypatch.setattr(speed, "cpu_has_native_bf16", lambda: native)
    assert speed.auto_precision("cpu") == expected
    assert str(speed.trainer(accelerator="cpu", logger=False).precision) == expected
    assert str(speed.trainer(precision="32-true", accelerator="cpu").precision) == "32-true"


@pytest.mark.parametrize(("bf16", "expected"), [(True, "bf16-mixed"), (False, "16-mixed")])
def test_auto_precision_on_gpu(monkeypatch: pytest.MonkeyPatch, bf16: bool, expected: str) -> None:
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: bf16)
    assert speed.auto_precision("gpu") == expected


def test_conv_nets_get_channels_last_weights_and_others_keep_theirs() -> None:
    small_cnn = dict(filters=[8, 8], padding=["same", "same"], dropout=[0.0, 0.0])
    cnn = Classifier(CNN(**small_cnn), torch.optim.Adam)
    conv = cnn.net.features[3].weight  # 8 input channels (with one, both layouts coincide)
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    plain = Classifier(CNN(**small_cnn), torch.optim.Adam, channels_last=False)
    assert plain.net.features[3].weight.is_contiguous()
    mlp = Classifier(MLP(units=16), torch.optim.Adam)
    assert all(p.is_contiguous() for p in mlp.parameters())
    with pytest.raises(ValueError, match="channels_last='maybe' is invalid"):
        Classifier(MLP(units=16), torch.optim.Adam, channels_last="maybe")


def test_the_fast_path_predicts_as_fp32_does() -> None:
    torch.manual_seed(0)
    net = CNN(filters=[32], padding=["valid"], dropout=[0.0], units=100).eval()
    images = torch.rand(64, 1, 28, 28)
    with torch.no_grad():
        reference = net(images)
        fast_net = speed.to_channels_last(net, "auto")
        fp32_channels_last = fast_net(images)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            mixed = fast_net(images).float()
    torch.testing.assert_close(fp32_channels_last, reference, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(mixed, reference, rtol=0.05, atol=0.05)
    agree = (mixed.argmax(1) == reference.argmax(1)).float().mean()
    assert agree >= 0.9


def test_trainers_get_the_free_profiler_unless_one_is_asked_for() -> None:
    default = speed.trainer(accelerator="cpu", logger=False)
    assert isinstance(default.profiler, speed.NoProfiler)
    with default.profiler.profile("[Callback]ModelCheckpoint.on_train_batch_end"):
        pass
    asked = speed.trainer(accelerator="cpu", logger=False, profiler="simple")
    assert isinstance(asked.profiler, SimpleProfiler)


FAULTS_PER_STEP = """
import resource, sys, torch
from sweeplab import speed
if sys.argv[1] == "keep":
    assert speed.malloc_keeps_freed_memory()
def step():  # a training step's activations: large buffers, all freed at its end
    buffers = [torch.empty(11 * 2**20, dtype=torch.uint8).fill_(1) for _ in range(6)]
    del buffers
step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not speed.is_glibc(), reason="mallopt is glibc's")
def test_freed_memory_is_kept_so_steps_do_not_fault_their_buffers_again() -> None:
    def page_faults(mode: str) -> int:
        done = subprocess.run(
            [sys.executable, "-c", FAULTS_PER_STEP, mode], capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        return int(done.stdout)

    touched = 10 * 6 * 11 * 2**20 // resource.getpagesize()  # the pages ten steps write
    default, kept = page_faults("default"), page_faults("keep")
    # By default glibc faults all of them again or 12% (its dynamic mmap threshold decides
    # which, run by run: 168,658 or 19,698 here); kept, 2-4% (2,816 or 5,633).
    assert kept < 0.05 * touched < default, (default, kept, touched)


def test_trainers_keep_freed_memory_unless_told_not_to(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[bool] = []
    monkeypatch.setattr(speed, "malloc_keeps_freed_memory", lambda: calls.append(True))
    speed.trainer(accelerator="cpu", logger=False, keep_freed_memory=False)
    assert calls == []
    speed.trainer(accelerator="cpu", logger=False)
    assert calls == [True]
