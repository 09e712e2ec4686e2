"""Argument checks and initialisers shared by the networks.

A network's constructor is where its arguments are understood, so it checks them; the
messages start with the argument name so that config checks can prefix the config key.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

__all__ = [
    "check_dropout",
    "check_dropouts",
    "check_list",
    "check_positive_int",
    "check_positive_ints",
    "check_same_length",
    "he_uniform_init",
    "keras_dense_init",
]


def check_list(name: str, values: object) -> None:
    """Per-layer settings are lists; a bare number is the commonest slip."""
    if isinstance(values, str | bytes) or not isinstance(values, Sequence):
        raise ValueError(
            f"{name}={values!r} is invalid: give a list with one entry per layer, e.g. "
            f"{name}=[{values}]."
        )


def check_positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}={value!r} is invalid: use a positive integer.")


def check_dropout(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value < 1.0:
        raise ValueError(f"{name}={value!r} is invalid: a dropout rate is in [0, 1).")


def check_positive_ints(name: str, values: Sequence[int]) -> None:
    check_list(name, values)
    for i, value in enumerate(values):
        check_positive_int(f"{name}[{i}]", value)


def check_dropouts(name: str, values: Sequence[float]) -> None:
    check_list(name, values)
    for i, value in enumerate(values):
        check_dropout(f"{name}[{i}]", value)


def check_same_length(**lists: Sequence[object]) -> None:
    lengths = {name: len(values) for name, values in lists.items()}
    if len(set(lengths.values())) > 1:
        listed = ", ".join(f"{name} has {n}" for name, n in lengths.items())
        raise ValueError(f"per-layer lists must have one entry per layer, but {listed}.")


def keras_dense_init(layer: nn.Linear) -> nn.Linear:
    """Glorot-uniform weights and zero bias: Keras's ``Dense`` default, as in the reference."""
    nn.init.xavier_uniform_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


def he_uniform_init(layer: nn.Linear | nn.Conv2d) -> nn.Linear | nn.Conv2d:
    """Keras's ``he_uniform``: U(-sqrt(6 / fan_in), sqrt(6 / fan_in)), zero bias."""
    nn.init.kaiming_uniform_(layer.weight, nonlinearity="relu")
    nn.init.zeros_(layer.bias)
    return layer
