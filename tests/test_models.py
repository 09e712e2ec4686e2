from __future__ import annotations

import copy
import math

import pytest
import torch

from sweeplab.models.classifier import Classifier
from sweeplab.models.cnn import CNN
from sweeplab.models.mlp import MLP
from sweeplab.models.resnet import ResNet

BATCH = torch.zeros(4, 1, 28, 28)


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"units": 50, "hidden_units": [75], "hidden_dropout": [0.1]},
        {"units": 300, "hidden_units": [50, 100], "hidden_dropout": [0.0, 0.2]},
    ],
)
def test_mlp_output_shape(kwargs: dict) -> None:
    assert MLP(**kwargs)(BATCH).shape == (4, 10)


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"filters": [64], "padding": ["same"], "dropout": [0.2], "units": 25},
        {"filters": [32, 64], "padding": ["valid", "valid"], "dropout": [0.1, 0.0]},
        {"filters": [64, 32], "padding": ["same", "valid"], "dropout": [0.0, 0.2], "units": 150},
    ],
)
def test_cnn_output_shape(kwargs: dict) -> None:
    assert CNN(**kwargs)(BATCH).shape == (4, 10)


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"width": 8, "blocks": [1, 1]}, {"width": 16, "blocks": [1, 2, 1], "dropout": 0.2}],
)
def test_resnet_output_shape(kwargs: dict) -> None:
    assert ResNet(**kwargs)(BATCH).shape == (4, 10)


def test_resnet_stages_double_channels_and_halve_resolution() -> None:
    net = ResNet(width=8, blocks=[1, 2, 1])
    sizes = []
    x = BATCH
    for layer in net.features:
        x = layer(x)
        sizes.append(tuple(x.shape[1:]))
    assert sizes[-4:] == [(8, 28, 28), (16, 14, 14), (16, 14, 14), (32, 7, 7)]
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules()) == 1 + 2 * 4 + 2
    # each block starts as its shortcut: the residual branch's last batch norm scale is zero
    block = net.features[3]
    assert torch.all(block.residual[-1].weight == 0)


def test_label_smoothing_reaches_the_loss() -> None:
    from functools import partial

    model = Classifier(MLP(), partial(torch.optim.SGD, lr=0.1), label_smoothing=0.1)
    logits = torch.tensor([[10.0, 0.0]])
    assert model.loss_fn(logits, torch.tensor([0])) > 0.04  # plain cross-entropy: 4.5e-5
    with pytest.raises(ValueError, match="label_smoothing=1.0"):
        Classifier(MLP(), partial(torch.optim.SGD, lr=0.1), label_smoothing=1.0)


def test_baselines_match_the_reference_architectures() -> None:
    mlp = MLP()
    linears = [m for m in mlp.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(784, 350), (350, 10)]
    cnn = CNN()
    convs = [m for m in cnn.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size) for c in convs] == [(32, (3, 3))]
    linears = [m for m in cnn.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(32 * 13 * 13, 100), (100, 10)]
    assert sum(p.numel() for p in cnn.parameters()) == 542_230  # Keras summary of the baseline


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cnn_pooling_before_relu_matches_the_reference_order(dtype: torch.dtype) -> None:
    """The CNN pools before its ReLU for speed; the reference's conv-ReLU-pool order must give
    the same outputs and gradients, in float32 and under bf16 autocast."""
    torch.manual_seed(0)
    net = CNN(filters=[8, 16], padding=["same", "valid"], dropout=[0.0, 0.0])
    reference = copy.deepcopy(net)
    layers = list(reference.features)
    for i in range(0, len(layers), 3):  # conv, pool, relu -> conv, relu, pool
        layers[i + 1], layers[i + 2] = layers[i + 2], layers[i + 1]
    reference.features = torch.nn.Sequential(*layers)
    assert [type(m).__name__ for m in reference.features[:3]] == ["Conv2d", "ReLU", "MaxPool2d"]
    images = torch.randn(16, 1, 28, 28)
    grads = []
    for model in (net, reference):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
            logits = model(images)
        logits.float().square().sum().backward()
        grads.append([p.grad for p in model.parameters()])
        assert logits.dtype == dtype
    torch.testing.assert_close(net(images), reference(images), rtol=0, atol=0)
    for ours, theirs in zip(*grads, strict=True):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=0)


def test_he_uniform_bounds() -> None:
    conv = CNN().features[0]
    limit = math.sqrt(6 / 9)  # fan_in = 1 channel * 3 * 3
    assert conv.weight.abs().max() <= limit and conv.weight.abs().max() > 0.8 * limit
    assert torch.all(conv.bias == 0)


@pytest.mark.parametrize(
    ("cls", "kwargs", "message"),
    [
        (MLP, {"units": -5}, r"units=-5"),
        (MLP, {"hidden_units": [50], "hidden_dropout": [1.0]}, r"hidden_dropout\[0\]=1.0"),
        (MLP, {"hidden_units": [50, 50], "hidden_dropout": [0.1]}, "one entry per layer"),
        (CNN, {"filters": [0], "padding": ["same"], "dropout": [0.0]}, r"filters\[0\]=0"),
        (CNN, {"filters": [32], "padding": ["full"], "dropout": [0.0]}, r"padding\[0\]='full'"),
        (CNN, {"filters": [], "padding": [], "dropout": []}, "at least one block"),
        (CNN, {"filters": [8] * 5, "padding": ["valid"] * 5, "dropout": [0.0] * 5}, "nothing"),
        (ResNet, {"width": 0}, r"width=0"),
        (ResNet, {"blocks": []}, "at least one stage"),
        (ResNet, {"blocks": [1] * 6}, "nothing"),
        (ResNet, {"dropout": 1.5}, r"dropout=1.5"),
    ],
)
def test_invalid_arguments_name_the_argument(cls: type, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        cls(**kwargs)
