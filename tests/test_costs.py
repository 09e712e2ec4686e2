"""What a model costs (sweeplab.costs): parameters and inference latency, in this process."""

from __future__ import annotations

import pytorch_lightning as pl
import torch

from sweeplab import costs
from sweeplab.models.classifier import Classifier
from sweeplab.models.cnn import CNN
from sweeplab.models.mlp import MLP


def test_parameters_count_what_trains() -> None:
    model = Classifier(MLP(units=16), torch.optim.Adam)
    assert costs.parameter_count(model) == 784 * 16 + 16 + 16 * 10 + 10
    model.net.requires_grad_(False)
    assert costs.parameter_count(model) == 0


def test_latency_is_timed_in_eval_mode_and_leaves_the_mode_as_it_was() -> None:
    trainer = pl.Trainer(accelerator="cpu", logger=False, precision="32-true")
    mlp = Classifier(MLP(units=16), torch.optim.Adam)
    modes: list[bool] = []
    mlp.net.register_forward_hook(lambda module, inputs, output: modes.append(module.training))
    assert 0 < costs.inference_latency_ms(mlp, trainer, (1, 28, 28)) < 10_000
    assert modes == [False] * (costs.LATENCY_WARMUP + costs.LATENCY_REPEATS) and mlp.training
    small_cnn = CNN(filters=[8, 8], padding=["same", "same"], dropout=[0.0, 0.0], units=16)
    cnn = Classifier(small_cnn, torch.optim.Adam).eval()  # conv weights: 4-d, maybe channels-last
    assert costs.inference_latency_ms(cnn, trainer, (1, 28, 28)) > 0 and not cnn.training
