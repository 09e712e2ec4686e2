from __future__ import annotations

import torch

from sweeplab.data.batches import TensorBatches, random_crop_and_flip


def test_every_sample_once_per_epoch_shuffled() -> None:
    images = torch.arange(103, dtype=torch.float32).view(103, 1, 1, 1)
    labels = torch.arange(103)
    batches = TensorBatches(images, labels, batch_size=10, shuffle=True)
    assert len(batches) == 11
    seen = torch.cat([y for _, y in batches])
    assert sorted(seen.tolist()) == list(range(103))
    assert seen.tolist() != list(range(103))
    for x, y in batches:  # images stay paired with their labels
        assert torch.equal(x.view(-1).long(), y)


def test_unshuffled_keeps_order() -> None:
    labels = torch.arange(25)
    batches = TensorBatches(torch.zeros(25, 1, 2, 2), labels, batch_size=10, shuffle=False)
    assert [len(y) for _, y in batches] == [10, 10, 5]
    assert torch.cat([y for _, y in batches]).tolist() == list(range(25))


def test_crop_without_padding_only_flips() -> None:
    images = torch.rand(64, 1, 6, 6)
    out = random_crop_and_flip(images, padding=0)
    flipped = torch.tensor([torch.equal(o, i.flip(-1)) for o, i in zip(out, images, strict=True)])
    unchanged = torch.tensor([torch.equal(o, i) for o, i in zip(out, images, strict=True)])
    assert torch.all(flipped | unchanged)
    assert flipped.any() and unchanged.any()


def test_crop_shifts_within_padding() -> None:
    torch.manual_seed(0)
    images = torch.zeros(200, 1, 8, 8)
    images[:, :, 4, 4] = 1.0  # one bright pixel; a shift moves it at most `padding` away
    out = random_crop_and_flip(images, padding=2)
    assert out.shape == images.shape
    positions = [torch.nonzero(o[0]) for o in out]
    assert all(len(p) == 1 for p in positions)
    rows = torch.stack([p[0] for p in positions])
    assert rows[:, 0].min() >= 2 and rows[:, 0].max() <= 6
    assert len(set(rows[:, 0].tolist())) == 5  # all five vertical shifts occur
