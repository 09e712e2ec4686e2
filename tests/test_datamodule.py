from __future__ import annotations

import gzip
import os
import shutil
import time
from pathlib import Path

import pytest
import torch

from sweeplab.data import fashion_mnist
from sweeplab.data.fashion_mnist import FashionMNISTDataModule
from sweeplab.errors import ConfigError, DataError


@pytest.fixture
def data_copy(fashion_dir: Path, tmp_path: Path) -> Path:
    """A private writable copy of the IDX files alone, so that cache files written by other
    tests' runs do not leak in."""
    return Path(shutil.copytree(fashion_dir, tmp_path / "fm", ignore=shutil.ignore_patterns(".*")))


@pytest.fixture(autouse=True)
def user_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The user cache of these tests, in their temporary directory."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _setup(data_dir: Path, stage: str | None = None, **kwargs: object) -> FashionMNISTDataModule:
    """A data module set up as a run does in a fresh process (nothing kept from earlier runs)."""
    fashion_mnist.PROCESS_MEMO.clear()
    dm = FashionMNISTDataModule(data_dir, download=False, val_size=100, **kwargs)
    dm.prepare_data()
    dm.setup(stage)
    return dm


def test_split_sizes_and_scaling(data_copy: Path) -> None:
    dm = _setup(data_copy)
    train, val, test = dm.train_dataloader(), dm.val_dataloader(), dm.test_dataloader()
    assert (len(train.labels), len(val.labels), len(test.labels)) == (500, 100, 200)
    assert torch.bincount(val.labels).tolist() == [10] * 10
    assert train.images.shape[1:] == (1, 28, 28) and train.images.dtype == torch.float32
    assert float(train.images.min()) >= 0.0 and float(train.images.max()) == 1.0
    images, labels = next(iter(train))
    assert images.shape == (32, 1, 28, 28) and labels.dtype == torch.int64
    assert set(dm.data_sha256) == {p.name for p in data_copy.glob("*.gz")}


def test_train_subset_is_stratified_and_inside_the_train_part(data_copy: Path) -> None:
    full = _setup(data_copy, "fit")
    subset = _setup(data_copy, "fit", train_subset=200)
    labels = subset.train_dataloader().labels
    assert torch.bincount(labels).tolist() == [20] * 10
    assert torch.equal(full.val_dataloader().images, subset.val_dataloader().images)


def test_split_is_deterministic_and_seeded(data_copy: Path) -> None:
    a = _setup(data_copy, "fit").val_dataloader().images
    b = _setup(data_copy, "fit").val_dataloader().images
    c = _setup(data_copy, "fit", split_seed=7).val_dataloader().images
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_runs_in_one_process_share_the_prepared_data_until_a_setting_changes(
    data_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _setup(data_copy)

    def no_preparing(*args: object) -> None:
        raise AssertionError("prepared the same data again in the same process")

    monkeypatch.setattr(fashion_mnist, "read_images_and_labels", no_preparing)
    monkeypatch.setattr(fashion_mnist, "stratified_split", no_preparing)
    for _ in range(2):  # the next trials of a sweep in this process
        again = FashionMNISTDataModule(data_copy, download=False, val_size=100, batch_size=7)
        again.prepare_data()
        again.setup()
        for split in ("train", "val", "test"):
            kept = getattr(first, f"{split}_dataloader")()
            made = getattr(again, f"{split}_dataloader")()
            assert kept.images is made.images and kept.labels is made.labels
        assert again.train_dataloader().batch_size == 7 and again.data_sha256 == first.data_sha256
    monkeypatch.undo()
    other = FashionMNISTDataModule(data_copy, download=False, val_size=100, split_seed=7)
    other.prepare_data()
    other.setup("fit")
    assert not torch.equal(other.val_dataloader().images, first.val_dataloader().images)


def test_second_load_reads_the_cache(
    data_copy: Path, user_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _setup(data_copy, "fit").val_dataloader().images
    assert list(user_cache.rglob("sweeplab/fashion-mnist/*/train.cache.pt"))

    def no_decoding(*args: object) -> None:
        raise AssertionError("decoded the raw files again despite a valid cache")

    monkeypatch.setattr(fashion_mnist, "read_images_and_labels", no_decoding)
    assert torch.equal(first, _setup(data_copy, "fit").val_dataloader().images)


def test_the_cache_is_keyed_by_content(
    data_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    labels_before = _setup(data_copy, "fit").train_dataloader().labels.clone()
    # An edited file with the same size and time stamp is decoded again, not served stale.
    labels_file = data_copy / "train-labels-idx1-ubyte.gz"
    stat = labels_file.stat()
    raw = bytearray(gzip.decompress(labels_file.read_bytes()))
    raw[8:] = bytes((label + 1) % 10 for label in raw[8:])
    labels_file.write_bytes(gzip.compress(bytes(raw)))
    os.utime(labels_file, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    labels_after = _setup(data_copy, "fit").train_dataloader().labels
    assert not torch.equal(labels_before, labels_after)
    # The same files in another directory share the cache.
    moved = Path(shutil.copytree(data_copy, tmp_path / "moved"))

    def no_decoding(*args: object) -> None:
        raise AssertionError("decoded identical files again despite a valid cache")

    monkeypatch.setattr(fashion_mnist, "read_images_and_labels", no_decoding)
    assert torch.equal(labels_after, _setup(moved, "fit").train_dataloader().labels)


def test_corrupt_cache_is_rebuilt(data_copy: Path, user_cache: Path) -> None:
    expected = _setup(data_copy, "fit").val_dataloader().images
    [cache] = user_cache.rglob("train.cache.pt")
    cache.write_bytes(b"garbage")
    assert torch.equal(expected, _setup(data_copy, "fit").val_dataloader().images)


def test_the_cache_never_goes_next_to_the_data(
    data_copy: Path, user_cache: Path, tmp_path: Path
) -> None:
    _setup(data_copy, "fit")
    assert list(user_cache.rglob("train.cache.pt"))
    assert sorted(p.name for p in data_copy.iterdir()) == sorted(
        p.name for p in data_copy.glob("*.gz")
    )
    _setup(data_copy, "fit", cache_dir=tmp_path / "elsewhere")  # data.cache_dir=...
    assert list((tmp_path / "elsewhere").rglob("train.cache.pt"))


def test_corrupt_file_is_named(data_copy: Path) -> None:
    labels = data_copy / "train-labels-idx1-ubyte.gz"
    labels.write_bytes(labels.read_bytes()[:40])
    with pytest.raises(DataError, match="train-labels-idx1-ubyte.gz"):
        _setup(data_copy, "fit")


def test_missing_files_without_download(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        FashionMNISTDataModule(tmp_path / "nowhere", download=False).prepare_data()
    message = str(info.value)
    for needed in (
        "nowhere",
        "train-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
        "data.data_dir=",
        "FASHION_MNIST_DIR",
    ):
        assert needed in message


def test_missing_files_without_network_fail_fast(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fashion_mnist, "MIRRORS", ("http://127.0.0.1:9/",))
    started = time.monotonic()
    with pytest.raises(DataError, match="the download failed"):
        FashionMNISTDataModule(tmp_path / "empty", download=True).prepare_data()
    assert time.monotonic() - started < 10


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"batch_size": 0}, "data.batch_size"),
        ({"val_size": 5}, "data.val_size"),
        ({"train_subset": 60_000}, "data.train_subset"),
        ({"train_subset": 3}, "data.train_subset"),
    ],
)
def test_bad_sizes_name_the_key(tmp_path: Path, kwargs: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        FashionMNISTDataModule(tmp_path, **kwargs)


def test_train_subset_larger_than_the_files_hold(data_copy: Path) -> None:
    with pytest.raises(ConfigError, match="data.train_subset=1000 is impossible"):
        _setup(data_copy, "fit", train_subset=1000)


def test_exposes_dataset_facts(tmp_path: Path) -> None:
    dm = FashionMNISTDataModule(tmp_path)
    assert dm.num_classes == 10 and dm.input_shape == (1, 28, 28)
    assert dm.class_names[0] == "T-shirt/top" and len(dm.class_names) == 10
