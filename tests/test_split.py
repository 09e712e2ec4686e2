from __future__ import annotations

import torch

from sweeplab.data.split import stratified_split


def _labels() -> torch.Tensor:
    # Unbalanced classes: 600, 300 and 100 members.
    return torch.tensor([0] * 600 + [1] * 300 + [2] * 100)[torch.randperm(1000)]


def test_sizes_disjoint_and_complete() -> None:
    labels = _labels()
    kept, held = stratified_split(labels, 150, seed=48)
    assert len(held) == 150 and len(kept) == 850
    assert set(kept.tolist()).isdisjoint(held.tolist())
    assert sorted(kept.tolist() + held.tolist()) == list(range(1000))


def test_class_shares_are_preserved() -> None:
    labels = _labels()
    _, held = stratified_split(labels, 150, seed=48)
    counts = torch.bincount(labels[held], minlength=3).tolist()
    assert counts == [90, 45, 15]


def test_rounding_adds_up_exactly() -> None:
    labels = torch.tensor([0] * 7 + [1] * 7 + [2] * 7)
    _, held = stratified_split(labels, 10, seed=0)
    counts = sorted(torch.bincount(labels[held]).tolist())
    assert len(held) == 10 and counts == [3, 3, 4]


def test_deterministic_per_seed() -> None:
    labels = _labels()
    first = stratified_split(labels, 100, seed=48)[1]
    assert torch.equal(first, stratified_split(labels, 100, seed=48)[1])
    assert not torch.equal(first, stratified_split(labels, 100, seed=49)[1])
