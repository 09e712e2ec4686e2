"""The Fashion-MNIST LightningDataModule: official files, the reference split, fast batches."""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch

from sweeplab.data.batches import TensorBatches, random_crop_and_flip
from sweeplab.data.idx import download, file_digest, find_idx_file, read_images_and_labels
from sweeplab.data.split import stratified_split
from sweeplab.errors import ConfigError, DataError
from sweeplab.files import write_atomic
from sweeplab.process import ProcessMemo
from sweeplab.values import is_int

__all__ = ["PROCESS_MEMO", "FashionMNISTDataModule", "LabelledImages", "Split"]

log = logging.getLogger(__name__)

# What the last run in this process prepared, by kind (the key's first item: "train files",
# "test files", "fit", "test"): a sweep's trials in one process share the decoded files and the
# scaled splits instead of preparing them again (0.1 s per trial on the reference data).
PROCESS_MEMO = ProcessMemo()

MIRRORS = (
    "https://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
)
# The official archives' MD5s, checked after a download.
OFFICIAL_MD5 = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}
SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
TRAIN_SIZE = 60_000
CACHE_VERSION = 2
Split = tuple[torch.Tensor, torch.Tensor]  # float images (N, 1, 28, 28), int64 labels


@dataclass(frozen=True)
class LabelledImages:
    images: torch.Tensor  # uint8, (N, 28, 28)
    labels: torch.Tensor  # int64, (N,)
    sha256: dict[str, str]  # file name -> checksum of the raw file it came from


class FashionMNISTDataModule(pl.LightningDataModule):
    """Fashion-MNIST split as in the reference study: 57,000 train / 3,000 val / 10,000 test.

    The validation set is a stratified sample of the official training set; ``train_subset``
    keeps a stratified subset of what remains, for quick runs. Decoded files are cached as
    uint8 tensors in the user cache (``cache_dir``, by default ``~/.cache``), so only the
    first run decompresses.
    """

    num_classes = 10
    input_shape = (1, 28, 28)
    class_names = (
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    )

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        download: bool = True,
        batch_size: int = 32,
        eval_batch_size: int = 1000,
        val_size: int = 3000,
        split_seed: int = 48,
        train_subset: int | None = None,
        augment: bool = False,
        augment_padding: int = 2,
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        super().__init__()
        _check_sizes(batch_size, eval_batch_size, val_size, train_subset, augment, augment_padding)
        if not is_int(split_seed) or split_seed < 0:
            raise ConfigError(f"data.split_seed={split_seed!r} is invalid: use an integer >= 0.")
        self.data_dir = Path(data_dir).expanduser()
        if self.data_dir.exists() and not self.data_dir.is_dir():
            raise DataError(
                f"data.data_dir={str(data_dir)!r} is a file, not a directory: point it at the "
                "directory that holds the four Fashion-MNIST IDX files."
            )
        self.download = download
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.val_size = val_size
        self.split_seed = split_seed
        self.train_subset = train_subset
        self.augment = augment
        self.augment_padding = augment_padding
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else None
        self.data_sha256: dict[str, str] = {}
        self._splits: dict[str, TensorBatches] = {}
        self._loaded: dict[str, LabelledImages] = {}  # decoded once per run

    # -- Lightning hooks -------------------------------------------------------------------

    def prepare_data(self) -> None:
        """Make sure the four files exist (downloading them when allowed) and are sound, so
        that a corrupt test file fails now rather than after the whole training run."""
        self._ensure_files()
        for split in SPLIT_FILES:
            self._load(split)

    def _ensure_files(self) -> None:
        missing = [
            f"{stem}.gz"
            for pair in SPLIT_FILES.values()
            for stem in pair
            if find_idx_file(self.data_dir, stem) is None
        ]
        if not missing:
            return
        if not self.download:
            raise DataError(self._missing_message(missing, "data.download=false"))
        for name in missing:
            log.info("Downloading %s to %s", name, self.data_dir)
            try:
                download([m + name for m in MIRRORS], self.data_dir / name, OFFICIAL_MD5[name])
            except DataError as e:
                raise DataError(self._missing_message(missing, f"the download failed: {e}")) from e

    def setup(self, stage: str | None = None) -> None:
        device = self.trainer.strategy.root_device if self.trainer is not None else None
        if stage in ("fit", "validate", None) and "train" not in self._splits:
            key = self._key("fit", device)
            (fit_images, fit_labels), val = PROCESS_MEMO.get(key, lambda: self._fit_split(device))
            self._splits["train"] = TensorBatches(fit_images, fit_labels, self.batch_size, True)
            self._splits["val"] = TensorBatches(*val, self.eval_batch_size, False)
        if stage in ("test", "predict", None) and "test" not in self._splits:
            [test] = PROCESS_MEMO.get(self._key("test", device), lambda: self._test_split(device))
            self._splits["test"] = TensorBatches(*test, self.eval_batch_size, False)

    def train_dataloader(self) -> TensorBatches:
        return self._splits["train"]

    def val_dataloader(self) -> TensorBatches:
        return self._splits["val"]

    def test_dataloader(self) -> TensorBatches:
        return self._splits["test"]

    def on_after_batch_transfer(
        self, batch: tuple[torch.Tensor, torch.Tensor], dataloader_idx: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.augment and self.trainer is not None and self.trainer.training:
            images, labels = batch
            return random_crop_and_flip(images, self.augment_padding), labels
        return batch

    # -- loading ---------------------------------------------------------------------------

    def _key(self, stage: str, device: torch.device | None) -> tuple[Any, ...]:
        """Everything the prepared tensors of ``stage`` depend on."""
        split = "train" if stage == "fit" else "test"
        digests = tuple(sorted(self._load(split).sha256.items()))
        return stage, digests, self.val_size, self.split_seed, self.train_subset, device

    def _fit_split(self, device: torch.device | None) -> list[Split]:
        data = self._load("train")
        if self.val_size >= len(data.labels):
            raise ConfigError(
                f"data.val_size={self.val_size} is impossible: {self.data_dir} holds "
                f"{len(data.labels)} training images."
            )
        fit_index, val_index = stratified_split(data.labels, self.val_size, self.split_seed)
        if self.train_subset is not None:
            if self.train_subset > len(fit_index):
                raise ConfigError(
                    f"data.train_subset={self.train_subset} is impossible: {self.data_dir} "
                    f"leaves {len(fit_index)} training images after the validation split."
                )
            fit_labels = data.labels[fit_index]
            holdout = len(fit_index) - self.train_subset
            fit_index = fit_index[stratified_split(fit_labels, holdout, self.split_seed)[0]]
        return [_scaled(data, fit_index, device), _scaled(data, val_index, device)]

    def _test_split(self, device: torch.device | None) -> list[Split]:
        data = self._load("test")
        return [_scaled(data, torch.arange(len(data.labels)), device)]

    def _load(self, split: str) -> LabelledImages:
        if split not in self._loaded:
            self._loaded[split] = self._read(split)
        return self._loaded[split]

    def _read(self, split: str) -> LabelledImages:
        paths = []
        for stem in SPLIT_FILES[split]:
            path = find_idx_file(self.data_dir, stem)
            if path is None:
                raise DataError(self._missing_message([stem], "prepare_data() was not run"))
            paths.append(path)
        # Hashing the compressed files takes milliseconds and names the cache by content: a
        # changed file is decoded again, and copies of the data in two places share one cache.
        digests = {p.name: file_digest(p) for p in paths}
        cache = self._cache_path(split, digests)
        data = PROCESS_MEMO.get(
            (f"{split} files", cache), lambda: self._decode(cache, paths, digests)
        )
        self.data_sha256.update(data.sha256)
        return data

    def _decode(self, cache: Path, paths: list[Path], digests: dict[str, str]) -> LabelledImages:
        cached = _read_cache(cache, digests)
        if cached is None:
            images, labels = read_images_and_labels(
                paths[0], paths[1], self.num_classes, self.input_shape[1:]
            )
            cached = LabelledImages(images, labels.long(), digests)
            _write_cache(cache, cached)
        return cached

    def _cache_path(self, split: str, digests: dict[str, str]) -> Path:
        # In the user's cache, never next to the data: a dataset directory is often shared and
        # read-mostly (and writable to root).
        base = self.cache_dir or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
        key = hashlib.sha256("".join(sorted(digests.values())).encode()).hexdigest()[:16]
        return base / "sweeplab" / "fashion-mnist" / key / f"{split}.cache.pt"

    def _missing_message(self, missing: list[str], reason: str) -> str:
        return (
            f"Fashion-MNIST files are missing in {self.data_dir}: {', '.join(missing)} "
            f"({reason}). sweeplab needs the four official IDX files train-images-idx3-ubyte, "
            "train-labels-idx1-ubyte, t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte "
            "(each .gz or uncompressed). Put them in that directory, or point sweeplab at "
            "another directory with the override data.data_dir=/path/to/fashion-mnist or the "
            "environment variable FASHION_MNIST_DIR; with network access, data.download=true "
            "fetches them from the official mirrors."
        )


def _scaled(data: LabelledImages, index: torch.Tensor, device: torch.device | None) -> Split:
    # Scale to [0, 1] once here rather than in every step.
    images = data.images[index].unsqueeze(1).float().div_(255)
    labels = data.labels[index]
    if device is not None:
        images, labels = images.to(device), labels.to(device)
    return images, labels


def _check_sizes(
    batch_size: int,
    eval_batch_size: int,
    val_size: int,
    train_subset: int | None,
    augment: bool,
    augment_padding: int,
) -> None:
    for key, value in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
        if not is_int(value) or value < 1:
            raise ConfigError(f"data.{key}={value!r} is invalid: use a positive integer.")
    num_classes = FashionMNISTDataModule.num_classes
    if not is_int(val_size) or not num_classes <= val_size <= TRAIN_SIZE - num_classes:
        raise ConfigError(
            f"data.val_size={val_size!r} is invalid: the validation set is drawn from the "
            f"{TRAIN_SIZE} training images and needs at least one image per class, so use an "
            f"integer in {num_classes}..{TRAIN_SIZE - num_classes} (the reference uses 3000)."
        )
    remaining = TRAIN_SIZE - val_size
    if train_subset is not None and (
        not is_int(train_subset) or not num_classes <= train_subset <= remaining
    ):
        raise ConfigError(
            f"data.train_subset={train_subset!r} is impossible: with data.val_size={val_size} "
            f"there are {remaining} training images, and a stratified subset needs at least "
            f"one per class. Use an integer in {num_classes}..{remaining}, or null for all."
        )
    if not isinstance(augment, bool):
        raise ConfigError(f"data.augment={augment!r} is invalid: use true or false.")
    if not is_int(augment_padding) or augment_padding < 0:
        raise ConfigError(
            f"data.augment_padding={augment_padding!r} is invalid: use an integer >= 0."
        )


def _read_cache(cache: Path, digests: dict[str, str]) -> LabelledImages | None:
    if not cache.is_file():
        return None
    try:
        saved = torch.load(cache, weights_only=True)
        if saved["version"] != CACHE_VERSION or saved["sha256"] != digests:
            return None
        return LabelledImages(saved["images"], saved["labels"], saved["sha256"])
    except Exception as e:  # a corrupt cache is rebuilt from the raw files, never fatal
        log.warning("Ignoring unreadable cache %s (%s); decoding the raw files again", cache, e)
        return None


def _write_cache(cache: Path, data: LabelledImages) -> None:
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        state = {
            "version": CACHE_VERSION,
            "images": data.images,
            "labels": data.labels,
            "sha256": data.sha256,
        }
        write_atomic(cache, lambda tmp: torch.save(state, tmp))
    except OSError as e:  # caching is an optimisation: a failure costs time, not the run
        log.warning("Could not write the dataset cache %s (%s)", cache, e)
