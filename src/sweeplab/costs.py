"""What a trained model costs: its trainable parameters and its inference latency, measured
the same way in every run so that multi-objective sweeps can trade them against accuracy."""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence

import pytorch_lightning as pl
import torch

__all__ = [
    "COST_METRICS",
    "LATENCY",
    "LATENCY_BATCH",
    "LATENCY_REPEATS",
    "LATENCY_WARMUP",
    "PARAMS",
    "inference_latency_ms",
    "parameter_count",
]

PARAMS = "model/params"
LATENCY = "model/latency_ms"
COST_METRICS = (PARAMS, LATENCY)

LATENCY_BATCH = 256  # images per timed forward pass: fixed, whatever the run's batch size
LATENCY_WARMUP = 3
LATENCY_REPEATS = 10


def parameter_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@torch.inference_mode()
def inference_latency_ms(
    model: pl.LightningModule, trainer: pl.Trainer, input_shape: Sequence[int]
) -> float:
    """Median milliseconds of one forward pass over ``LATENCY_BATCH`` images, on the run's
    device, in its precision and memory layout, after warm-up passes."""
    was_training = model.training
    model.eval()
    batch = torch.rand(LATENCY_BATCH, *input_shape, device=model.device)
    kernels = [p for p in model.parameters() if p.ndim == 4]
    if kernels and batch.ndim == 4 and kernels[0].is_contiguous(memory_format=torch.channels_last):
        batch = batch.contiguous(memory_format=torch.channels_last)
    timings = []
    with trainer.precision_plugin.forward_context():
        for i in range(LATENCY_WARMUP + LATENCY_REPEATS):
            _synchronize(model.device)
            start = time.perf_counter()
            model(batch)
            _synchronize(model.device)
            if i >= LATENCY_WARMUP:
                timings.append((time.perf_counter() - start) * 1000)
    model.train(was_training)
    return statistics.median(timings)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
