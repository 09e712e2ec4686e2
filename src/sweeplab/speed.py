"""The fastest correct numerics for the machine a run lands on, and a Trainer without the
default profiler's per-hook cost.

``precision="auto"`` (the trainer configs' default) picks mixed precision where the hardware
runs it natively: bfloat16 on CPUs with AVX-512 BF16 or AMX and on GPUs that support it,
float16 on older GPUs, float32 elsewhere. Measured on a 2-core AVX-512 BF16 CPU, bf16
autocast with channels-last convolutions ran the reference CNN's training step in 0.49x
(batch 32) to 0.34x (batch 256) of the float32 time (BENCHMARKS.md).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import logging
import os
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.profilers import Profiler
from torch import nn

from sweeplab.errors import ConfigError

log = logging.getLogger(__name__)

AUTO = "auto"
# mallopt(3) parameters, from <malloc.h>; 32 MiB is glibc's ceiling for the mmap threshold.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD = 32 * 2**20
TRIM_THRESHOLD = 256 * 2**20
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo flags of native bf16 arithmetic


@functools.cache
def cpu_has_native_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether this CPU computes in bfloat16 natively; without it, bf16 is emulated and
    slower than float32."""
    try:
        flags = cpuinfo.read_text()
    except OSError:  # not Linux: no cheap way to tell, and float32 is always correct
        return False
    return any(flag in flags.split() for flag in CPU_BF16_FLAGS)


def auto_precision(accelerator: str) -> str:
    """The Lightning ``precision`` that ``"auto"`` stands for on ``accelerator``."""
    on_gpu = accelerator in ("gpu", "cuda") or (accelerator == AUTO and torch.cuda.is_available())
    if on_gpu:
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return "bf16-mixed" if cpu_has_native_bf16() else "32-true"


def is_glibc() -> bool:
    """Whether this process runs on GNU libc, whose malloc ``mallopt`` tunes."""
    try:
        version = os.confstr("CS_GNU_LIBC_VERSION")
    except (AttributeError, ValueError, OSError):  # not a GNU system, or not POSIX
        return False
    return bool(version and version.startswith("glibc"))


@functools.cache
def malloc_keeps_freed_memory() -> bool:
    """Make glibc's malloc keep freed memory for the next step instead of handing it back.

    A training step frees and re-allocates the same large activation buffers every step. By
    default glibc serves blocks over 128 KiB with fresh ``mmap`` pages and trims the top of the
    heap on free, so each step page-faults and zeroes its buffers anew: the reference CNN at
    batch 256 took 4.4 s per epoch here, 2.3 s with freed memory kept. Process-wide, once;
    returns whether it took (False off glibc).
    """
    if not is_glibc():
        return False
    libc = ctypes.CDLL("libc.so.6")
    trim = libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    return bool(trim and libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))


class NoProfiler(Profiler):
    """Lightning's default profiler without its cost.

    Lightning wraps every hook in ``profiler.profile(...)``, about 80 times per training batch;
    the default ``PassThroughProfiler`` makes a generator context manager each time (0.8 us
    against 0.1 us), about 5% of a small MLP's step here. One shared null context does the
    same nothing.
    """

    _nothing = contextlib.nullcontext()

    def start(self, action_name: str) -> None:
        pass

    def stop(self, action_name: str) -> None:
        pass

    def profile(self, action_name: str) -> contextlib.nullcontext:  # type: ignore[override]
        return self._nothing


def trainer(
    precision: str | int = AUTO,
    accelerator: str = AUTO,
    profiler: Any = None,
    keep_freed_memory: bool = True,
    **kwargs: Any,
) -> pl.Trainer:
    """``pl.Trainer`` with ``precision="auto"`` resolved for the accelerator,
    :class:`NoProfiler` unless a profiler is asked for, and freed memory kept for the next step
    (:func:`malloc_keeps_freed_memory`) unless ``keep_freed_memory`` is false."""
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"`trainer.accelerator`={accelerator!r}, but torch {torch.__version__} sees no CUDA "
            "GPU on this machine; the accelerator here is the CPU. Use trainer=cpu (or "
            "trainer=default, which takes a GPU when there is one), or run on a GPU machine "
            "with a CUDA build of torch."
        )
    if keep_freed_memory:
        malloc_keeps_freed_memory()
    if precision == AUTO:
        precision = auto_precision(str(accelerator))
        log.info("precision=auto: %s on accelerator=%s", precision, accelerator)
    return pl.Trainer(
        precision=precision, accelerator=accelerator, profiler=profiler or NoProfiler(), **kwargs
    )


def has_convolutions(net: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in net.modules())


def to_channels_last(net: nn.Module, setting: bool | str) -> nn.Module:
    """Convolutions in channels-last memory format (``setting`` true, or ``auto`` for a net
    with 2-d convolutions): oneDNN and cuDNN run them, and the pooling after them, faster."""
    if setting is True or (setting == AUTO and has_convolutions(net)):
        return net.to(memory_format=torch.channels_last)
    return net
