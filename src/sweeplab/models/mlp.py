"""The reference multilayer perceptron."""

from __future__ import annotations

from collections.abc import Sequence
from math import prod

from torch import Tensor, nn

from sweeplab.models.layers import (
    check_dropouts,
    check_positive_int,
    check_positive_ints,
    check_same_length,
    keras_dense_init,
)

__all__ = ["MLP"]


class MLP(nn.Module):
    """Flatten -> Dense(units) ReLU -> [Dense(hidden_units[i]) ReLU -> Dropout(hidden_dropout[i])]*
    -> Dense(num_classes).

    The reference hypermodel: a first dense layer, then ``len(hidden_units)`` further dense
    layers, each with its own width and dropout. The baseline has no further layers.
    """

    def __init__(
        self,
        input_shape: Sequence[int] = (1, 28, 28),
        num_classes: int = 10,
        units: int = 350,
        hidden_units: Sequence[int] = (),
        hidden_dropout: Sequence[float] = (),
    ) -> None:
        super().__init__()
        check_positive_int("units", units)
        check_positive_ints("hidden_units", hidden_units)
        check_dropouts("hidden_dropout", hidden_dropout)
        check_same_length(hidden_units=hidden_units, hidden_dropout=hidden_dropout)
        layers: list[nn.Module] = [nn.Flatten()]
        width = prod(input_shape)
        for out, dropout in [(units, 0.0), *zip(hidden_units, hidden_dropout, strict=True)]:
            layers += [keras_dense_init(nn.Linear(width, out)), nn.ReLU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = out
        layers.append(keras_dense_init(nn.Linear(width, num_classes)))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)
