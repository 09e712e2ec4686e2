"""Writers of small IDX files for tests: a learnable stand-in for Fashion-MNIST."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

from sweeplab.data.idx import IMAGES_MAGIC, LABELS_MAGIC


def idx_bytes(array: np.ndarray, magic: int) -> bytes:
    header = struct.pack(">i", magic) + struct.pack(f">{array.ndim}i", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_idx(path: Path, array: np.ndarray, magic: int) -> Path:
    data = idx_bytes(array, magic)
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)
    return path


def synthetic_images(labels: np.ndarray, seed: int) -> np.ndarray:
    """Noisy images whose class shows as a bright horizontal bar at row 2 * label + 4."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 60, size=(len(labels), 28, 28))
    for i, label in enumerate(labels):
        images[i, 2 * label + 4, 4:24] = 255
    return images.astype(np.uint8)


def write_fashion_mnist(directory: Path, n_train: int = 600, n_test: int = 200) -> Path:
    """Write the four Fashion-MNIST files (gzipped) with balanced synthetic classes."""
    directory.mkdir(parents=True, exist_ok=True)
    for prefix, n, seed in (("train", n_train, 0), ("t10k", n_test, 1)):
        labels = np.arange(n) % 10
        np.random.default_rng(seed).shuffle(labels)
        write_idx(
            directory / f"{prefix}-images-idx3-ubyte.gz",
            synthetic_images(labels, seed),
            IMAGES_MAGIC,
        )
        write_idx(directory / f"{prefix}-labels-idx1-ubyte.gz", labels, LABELS_MAGIC)
    return directory
