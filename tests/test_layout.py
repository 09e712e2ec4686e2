"""Channels-last weights for convolutional nets (sweeplab.models.layout), with results that
stay correct."""

from __future__ import annotations

import pytest
import torch

from sweeplab.models.classifier import Classifier
from sweeplab.models.cnn import CNN
from sweeplab.models.layout import has_convolutions, to_channels_last
from sweeplab.models.mlp import MLP


def test_conv_nets_get_channels_last_weights_and_others_keep_theirs() -> None:
    small_cnn = dict(filters=[8, 8], padding=["same", "same"], dropout=[0.0, 0.0])
    cnn = Classifier(CNN(**small_cnn), torch.optim.Adam)
    conv = cnn.net.features[3].weight  # 8 input channels (with one, both layouts coincide)
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    plain = Classifier(CNN(**small_cnn), torch.optim.Adam, channels_last=False)
    assert plain.net.features[3].weight.is_contiguous()
    mlp = Classifier(MLP(units=16), torch.optim.Adam)
    assert not has_convolutions(mlp.net)
    assert all(p.is_contiguous() for p in mlp.parameters())
    with pytest.raises(ValueError, match="channels_last='maybe' is invalid"):
        Classifier(MLP(units=16), torch.optim.Adam, channels_last="maybe")


def test_the_fast_path_predicts_as_fp32_does() -> None:
    torch.manual_seed(0)
    net = CNN(filters=[32], padding=["valid"], dropout=[0.0], units=100).eval()
    images = torch.rand(64, 1, 28, 28)
    with torch.no_grad():
        reference = net(images)
        fast_net = to_channels_last(net, "auto")
        fp32_channels_last = fast_net(images)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            mixed = fast_net(images).float()
    torch.testing.assert_close(fp32_channels_last, reference, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(mixed, reference, rtol=0.05, atol=0.05)
    agree = (mixed.argmax(1) == reference.argmax(1)).float().mean()
    assert agree >= 0.9


@pytest.mark.slow  # a fresh Python process that imports torch (6.5 s)
def test_the_models_import_no_trainer_or_process_module() -> None:
    import subprocess
    import sys

    code = (
        "import sys, sweeplab.models.classifier; "
        "print(sorted({'sweeplab.trainers', 'sweeplab.process'} & set(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
