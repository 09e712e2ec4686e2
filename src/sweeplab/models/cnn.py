"""The reference convolutional network."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from sweeplab.models.layers import (
    check_dropouts,
    check_positive_int,
    check_positive_ints,
    check_same_length,
    he_uniform_init,
    keras_dense_init,
)

__all__ = ["CNN", "PADDINGS"]

PADDINGS = ("valid", "same")


class CNN(nn.Module):
    """[Conv2d 3x3 ReLU -> MaxPool 2 -> Dropout] per block -> Flatten -> Dense(units) ReLU
    -> Dense(num_classes).

    Each block pools before its ReLU: max and ReLU commute, so outputs and gradients are the
    reference's, and the ReLU runs on a quarter of the values. With bf16 and channels-last
    on CPU the baseline's training step takes 0.86x (batch 32) and 0.61x (batch 256) of the
    conv-ReLU-pool order's time (benchmarks/pool_order.py).

    Block ``i`` has ``filters[i]`` channels, ``padding[i]`` in {valid, same} and
    ``dropout[i]``; convolutions and the hidden dense layer use He-uniform initialisation, as
    in the reference.
    """

    def __init__(
        self,
        input_shape: Sequence[int] = (1, 28, 28),
        num_classes: int = 10,
        filters: Sequence[int] = (32,),
        padding: Sequence[str] = ("valid",),
        dropout: Sequence[float] = (0.0,),
        units: int = 100,
        kernel_size: int = 3,
    ) -> None:
        super().__init__()
        check_positive_ints("filters", filters)
        check_positive_int("units", units)
        check_positive_int("kernel_size", kernel_size)
        check_dropouts("dropout", dropout)
        check_same_length(filters=filters, padding=padding, dropout=dropout)
        if not filters:
            raise ValueError("filters=[] is invalid: a CNN needs at least one block.")
        for i, mode in enumerate(padding):
            if mode not in PADDINGS:
                raise ValueError(f"padding[{i}]={mode!r} is invalid: use one of {PADDINGS}.")

        channels = input_shape[0]
        blocks: list[nn.Module] = []
        for out, mode, rate in zip(filters, padding, dropout, strict=True):
            conv = nn.Conv2d(channels, out, kernel_size, padding=mode)
            blocks += [he_uniform_init(conv), nn.MaxPool2d(2), nn.ReLU()]
            if rate > 0:
                blocks.append(nn.Dropout(rate))
            channels = out
        self.features = nn.Sequential(*blocks)
        try:
            with torch.no_grad():
                flat = self.features(torch.zeros(1, *input_shape)).numel()
        except RuntimeError:  # a valid convolution on a map smaller than its kernel
            flat = 0
        if flat == 0:
            raise ValueError(
                f"filters={list(filters)} with padding={list(padding)} shrinks a "
                f"{tuple(input_shape)} input to nothing: use fewer blocks or 'same' padding."
            )
        self.head = nn.Sequential(
            nn.Flatten(),
            he_uniform_init(nn.Linear(flat, units)),
            nn.ReLU(),
            keras_dense_init(nn.Linear(units, num_classes)),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))
