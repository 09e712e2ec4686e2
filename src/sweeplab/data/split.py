"""Deterministic stratified splits of a labelled dataset."""

from __future__ import annotations

import torch

__all__ = ["stratified_split"]


def stratified_split(
    labels: torch.Tensor, holdout_size: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Split indices into (kept, held out) with each class's share preserved in the holdout.

    Each class gets ``holdout_size * class_fraction`` holdout places, rounded by largest
    remainder so that the sizes add up exactly. The same labels and seed always give the
    same split. Both index tensors are sorted.
    """
    if not 0 <= holdout_size <= len(labels):
        raise ValueError(f"holdout_size must be in 0..{len(labels)}, got {holdout_size}")
    generator = torch.Generator().manual_seed(seed)
    classes, counts = torch.unique(labels, return_counts=True)
    quotas = counts.double() * holdout_size / len(labels)
    sizes = quotas.floor().long()
    shortfall = holdout_size - int(sizes.sum())
    # Give the remaining places to the classes with the largest remainders (ties: lower class).
    order = torch.argsort(quotas - sizes.double(), descending=True, stable=True)
    sizes[order[:shortfall]] += 1

    holdout: list[torch.Tensor] = []
    for cls, size in zip(classes.tolist(), sizes.tolist(), strict=True):
        members = torch.nonzero(labels == cls, as_tuple=True)[0]
        chosen = members[torch.randperm(len(members), generator=generator)[:size]]
        holdout.append(chosen)
    held_out = torch.cat(holdout).sort().values
    mask = torch.ones(len(labels), dtype=torch.bool)
    mask[held_out] = False
    return torch.nonzero(mask, as_tuple=True)[0], held_out
