"""Batches served by slicing tensors that already sit on the training device.

A per-sample ``Dataset.__getitem__`` plus collate costs more than the MLP's training step on
small images; indexing a shuffled permutation costs one gather per batch.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch

__all__ = ["TensorBatches", "random_crop_and_flip"]


class TensorBatches:
    """An iterable of ``(images, labels)`` batches over in-memory tensors.

    Shuffling draws from torch's global generator, so ``seed_everything`` makes it repeatable.
    """

    def __init__(
        self, images: torch.Tensor, labels: torch.Tensor, batch_size: int, shuffle: bool
    ) -> None:
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.images = images
        self.labels = labels
        self.batch_size = batch_size
        self.shuffle = shuffle

    def __len__(self) -> int:
        return math.ceil(len(self.labels) / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.labels)
        if self.shuffle:
            order = torch.randperm(n).to(self.images.device)
            for start in range(0, n, self.batch_size):
                index = order[start : start + self.batch_size]
                yield self.images[index], self.labels[index]
        else:
            for start in range(0, n, self.batch_size):
                yield (
                    self.images[start : start + self.batch_size],
                    self.labels[start : start + self.batch_size],
                )


def random_crop_and_flip(images: torch.Tensor, padding: int) -> torch.Tensor:
    """Randomly shift each image by up to ``padding`` pixels (zero fill) and flip half of them.

    Works on a whole ``(B, C, H, W)`` batch at once, on any device.
    """
    batch, _, height, width = images.shape
    device = images.device
    padded = torch.nn.functional.pad(images, (padding,) * 4)
    dy = torch.randint(0, 2 * padding + 1, (batch, 1), device=device)
    dx = torch.randint(0, 2 * padding + 1, (batch, 1), device=device)
    rows = (dy + torch.arange(height, device=device))[:, :, None]  # (B, H, 1)
    cols = (dx + torch.arange(width, device=device))[:, None, :]  # (B, 1, W)
    flip = torch.rand(batch, 1, 1, device=device) < 0.5
    cols = torch.where(flip, cols.flip(-1), cols)
    batch_index = torch.arange(batch, device=device)[:, None, None]
    # Advanced indexing over (B, H, W) on a channels-last view, then back to (B, C, H, W).
    return padded.permute(0, 2, 3, 1)[batch_index, rows, cols].permute(0, 3, 1, 2).contiguous()
