"""A small convolutional network: replace it with yours, keeping the two conventions sweeplab
relies on (``input_shape`` and ``num_classes`` in, logits out; bad arguments raise
``ValueError`` naming the argument)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

__all__ = ["SmallNet"]


class SmallNet(nn.Module):
    """Conv 3x3 (``channels``) -> ReLU -> MaxPool 2 -> Dense(``hidden``) ReLU -> Dense."""

    def __init__(
        self,
        input_shape: Sequence[int] = (1, 28, 28),
        num_classes: int = 10,
        channels: int = 8,
        hidden: int = 64,
    ) -> None:
        super().__init__()
        for name, value in (("channels", channels), ("hidden", hidden)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r} is invalid: use a positive integer.")
        depth, height, width = input_shape
        self.layers = nn.Sequential(
            nn.Conv2d(depth, channels, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(channels * (height // 2) * (width // 2), hidden),
            nn.ReLU(),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)
