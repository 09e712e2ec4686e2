"""A small residual network for 28x28 images, with batch norm."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from sweeplab.models.layers import check_dropout, check_positive_int, check_positive_ints

__all__ = ["BasicBlock", "ResNet"]


class BasicBlock(nn.Module):
    """Conv 3x3 BN ReLU -> Conv 3x3 BN, plus the input (projected by a 1x1 conv when the
    shape changes), then ReLU: the block of ResNet-18/34."""

    def __init__(self, channels_in: int, channels: int, stride: int) -> None:
        super().__init__()
        self.residual = nn.Sequential(
            nn.Conv2d(channels_in, channels, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
        )
        # Start each block as the identity: the last BN's scale at zero (Goyal et al., 2017).
        nn.init.zeros_(self.residual[-1].weight)
        self.shortcut = (
            nn.Identity()
            if stride == 1 and channels_in == channels
            else nn.Sequential(
                nn.Conv2d(channels_in, channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(channels),
            )
        )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.residual(x) + self.shortcut(x))


class ResNet(nn.Module):
    """Stem (Conv 3x3 BN ReLU, ``width`` channels) -> stages -> global average pool ->
    Dropout -> Dense(num_classes).

    Stage ``i`` has ``blocks[i]`` basic blocks with ``width * 2**i`` channels; every stage
    after the first halves the resolution (28 -> 14 -> 7 for three stages). The default,
    ``width=32, blocks=[2, 2, 2]``, has 0.7 M parameters.
    """

    def __init__(
        self,
        input_shape: Sequence[int] = (1, 28, 28),
        num_classes: int = 10,
        width: int = 32,
        blocks: Sequence[int] = (2, 2, 2),
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        check_positive_int("width", width)
        check_positive_ints("blocks", blocks)
        check_dropout("dropout", dropout)
        if not blocks:
            raise ValueError("blocks=[] is invalid: a ResNet needs at least one stage.")
        if 2 ** (len(blocks) - 1) > min(input_shape[1:]):
            raise ValueError(
                f"blocks={list(blocks)} has {len(blocks)} stages, which halve a "
                f"{tuple(input_shape)} input to nothing: use fewer stages."
            )
        layers: list[nn.Module] = [
            nn.Conv2d(input_shape[0], width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
        ]
        channels = width
        for stage, count in enumerate(blocks):
            out = width * 2**stage
            for i in range(count):
                layers.append(BasicBlock(channels, out, stride=2 if stage and not i else 1))
                channels = out
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(channels, num_classes),
        )
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))
