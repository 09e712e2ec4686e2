"""The Trainer factory of the trainer configs: the fastest correct numerics for the machine a
run lands on, and no cost from the default profiler.

``precision="auto"`` (the trainer configs' default) picks mixed precision where the hardware
runs it natively: bfloat16 on CPUs with AVX-512 BF16 or AMX and on GPUs that support it,
float16 on older GPUs, float32 elsewhere. Measured on a 2-core AVX-512 BF16 CPU
(2026-11-28), bf16 autocast with channels-last convolutions ran the reference CNN's training
step in 0.49x (batch 32) to 0.34x (batch 256) of the float32 time (BENCHMARKS.md, the fast
path's choices).

Building a Trainer changes nothing outside it: the process-wide settings that the trainer
configs also hold (``trainer.keep_freed_memory``) are the entry point's to apply, with
:func:`sweeplab.process.apply`, and :func:`without_process_settings` leaves them out of what
the factory receives.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.plugins.io import CheckpointIO, TorchCheckpointIO
from pytorch_lightning.profilers import Profiler

from sweeplab.errors import ConfigError
from sweeplab.files import write_atomic

__all__ = [
    "AUTO",
    "PROCESS_SETTINGS",
    "AtomicCheckpointIO",
    "LastCheckpoint",
    "NoProfiler",
    "Resumable",
    "auto_precision",
    "cpu_has_native_bf16",
    "last_checkpoint_path",
    "trainer",
    "without_process_settings",
]

log = logging.getLogger(__name__)

AUTO = "auto"
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo flags of native bf16 arithmetic
# Keys of the trainer configs that set up the process, not the Trainer: the keyword arguments
# of sweeplab.process.apply, which the entry point calls before it builds the Trainer.
PROCESS_SETTINGS = ("keep_freed_memory",)


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


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written whole or not at all: a full disk or a kill in the middle of a
    write leaves the previous file (or none), never a truncated ``best.ckpt``."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None
    ) -> None:
        if "://" in str(path):  # a remote filesystem: fsspec's own writes
            return super().save_checkpoint(checkpoint, path, storage_options)
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        save = super().save_checkpoint
        write_atomic(target, lambda tmp: save(checkpoint, tmp, storage_options))
        return None


class LastCheckpoint(pl.Callback):
    """Writes ``last.ckpt`` (:func:`last_checkpoint_path`) at the end of every epoch.

    Lightning's own ``save_last`` writes it only in an epoch that saved a top-k checkpoint,
    that is, one whose monitored metric improved: a run that dies after epochs without
    improvement would go back to the last improvement. Written when the training epoch ends,
    after validation and the checkpoint callbacks' own updates, so it holds their state of
    that epoch and a fit resumed from it starts the next one."""

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if (path := last_checkpoint_path(trainer)) is not None:
            trainer.save_checkpoint(path)


def last_checkpoint_path(trainer: pl.Trainer) -> Path | None:
    """``last.ckpt`` in the directory of the run's checkpoint callback; ``None`` without one
    (or with a directory that is not a path)."""
    callback = trainer.checkpoint_callback
    if not isinstance(callback, ModelCheckpoint) or not isinstance(callback.dirpath, str | Path):
        return None
    return Path(callback.dirpath) / f"{callback.CHECKPOINT_NAME_LAST}{callback.FILE_EXTENSION}"


class Resumable(pl.Callback):
    """What a run that goes on from another run's checkpoint needs beyond Lightning's restore.

    - The running bests (torchmetrics' ``MinMetric``/``MaxMetric`` in the module, such as
      ``val/loss_best``), which are not part of a module's state and which a LightningModule may
      reset when training starts: saved in every checkpoint, put back as the first epoch starts.
    - The checkpoint callbacks' files: a checkpoint written in another run's directory names
      that directory, and Lightning then forgets the best score so far. Its best checkpoints
      are copied into this run's directory and the callbacks' state is moved with them, so
      ``best.ckpt`` stays the best epoch of the whole run.
    """

    KEY = "sweeplab_running_bests"

    def __init__(self) -> None:
        self._bests: dict[str, dict[str, torch.Tensor]] = {}

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        checkpoint[self.KEY] = {
            name: {key: value.detach().clone() for key, value in metric.metric_state.items()}
            for name, metric in _running_bests(pl_module)
        }

    def on_load_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        self._bests = checkpoint.get(self.KEY, {})
        states = checkpoint.get("callbacks", {})
        for callback in trainer.checkpoint_callbacks:
            state = states.get(callback.state_key)
            if isinstance(callback, ModelCheckpoint) and state and callback.dirpath:
                _move_checkpoint_state(state, callback.dirpath)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        bests, self._bests = self._bests, {}
        for name, metric in _running_bests(pl_module):
            for key, value in bests.get(name, {}).items():
                setattr(metric, key, value.to(pl_module.device))


def _running_bests(module: torch.nn.Module) -> list[tuple[str, Any]]:
    from torchmetrics import MaxMetric, MinMetric

    return [(n, m) for n, m in module.named_modules() if isinstance(m, MaxMetric | MinMetric)]


def _move_checkpoint_state(state: dict[str, Any], dirpath: str) -> None:
    """Point a ``ModelCheckpoint`` state saved in another directory at ``dirpath``, copying
    the best checkpoints it names there (the last one is written again at the next epoch)."""
    old = state.get("dirpath")
    if not old or old == dirpath:
        return

    def moved(path: Any) -> Any:
        if not isinstance(path, str) or not path.startswith(old + os.sep):
            return path
        target = Path(dirpath) / Path(path).relative_to(old)
        if Path(path).is_file() and not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(target, lambda tmp: shutil.copyfile(path, tmp))
        return str(target)

    state["dirpath"] = dirpath
    state["best_k_models"] = {moved(k): v for k, v in state.get("best_k_models", {}).items()}
    for key in ("best_model_path", "kth_best_model_path"):
        state[key] = moved(state.get(key))
    if last := state.get("last_model_path"):
        state["last_model_path"] = str(Path(dirpath) / Path(last).name)


def trainer(
    precision: str | int = AUTO, accelerator: str = AUTO, profiler: Any = None, **kwargs: Any
) -> pl.Trainer:
    """``pl.Trainer`` with ``precision="auto"`` resolved for the accelerator,
    :class:`NoProfiler` unless a profiler is asked for, and atomic checkpoint writes unless
    another ``CheckpointIO`` plugin is given."""
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"`trainer.accelerator`={accelerator!r}, but torch {torch.__version__} sees no CUDA "
            "GPU on this machine; the accelerator here is the CPU. Use trainer=cpu (or "
            "trainer=default, which takes a GPU when there is one), or run on a GPU machine "
            "with a CUDA build of torch."
        )
    if precision == AUTO:
        precision = auto_precision(str(accelerator))
        log.info("precision=auto: %s on accelerator=%s", precision, accelerator)
    plugins = list(kwargs.pop("plugins", None) or [])
    if not any(isinstance(plugin, CheckpointIO) for plugin in plugins):
        plugins.append(AtomicCheckpointIO())
    return pl.Trainer(
        plugins=plugins,
        precision=precision,
        accelerator=accelerator,
        profiler=profiler or NoProfiler(),
        **kwargs,
    )


def without_process_settings(node: DictConfig) -> DictConfig:
    """A trainer config without its process settings (:data:`PROCESS_SETTINGS`): the
    arguments of the factory, resolved (``node``'s interpolations name other parts of the run's
    config). ``node`` is unchanged."""
    # Resolved into a config of its own: Hydra re-reads a node that still has a parent from
    # that parent, settings included.
    arguments = OmegaConf.to_container(node, resolve=True)
    for key in PROCESS_SETTINGS:
        arguments.pop(key, None)  # type: ignore[union-attr]
    return OmegaConf.create(arguments)  # type: ignore[return-value]
