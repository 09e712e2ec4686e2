"""The memory layout of a network's weights: channels-last for convolutions."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["AUTO", "has_convolutions", "to_channels_last"]

AUTO = "auto"


def has_convolutions(net: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in net.modules())


def to_channels_last(net: nn.Module, setting: bool | str) -> nn.Module:
    """Convolutions in channels-last memory format (``setting`` true, or ``auto`` for a net
    with 2-d convolutions): oneDNN and cuDNN run them, and the pooling after them, faster."""
    if setting is True or (setting == AUTO and has_convolutions(net)):
        return net.to(memory_format=torch.channels_last)
    return net
