"""Reading, validating and downloading IDX files (the format of MNIST and Fashion-MNIST).

No Lightning here: plain functions over paths and tensors, so that they are easy to test.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.client
import socket
import struct
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from sweeplab.errors import DataError
from sweeplab.files import write_atomic

__all__ = [
    "IMAGES_MAGIC",
    "LABELS_MAGIC",
    "IDXFormatError",
    "download",
    "file_digest",
    "find_idx_file",
    "read_idx",
    "read_images_and_labels",
]

IMAGES_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions
LABELS_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension


class IDXFormatError(DataError):
    """An IDX file is truncated, corrupt or does not hold what its name promises."""


def find_idx_file(directory: Path, stem: str) -> Path | None:
    """Return ``directory/stem`` or ``directory/stem.gz``, whichever exists (raw first)."""
    for candidate in (directory / stem, directory / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _read_bytes(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise IDXFormatError(
            f"Cannot read {path}: {e}. The file is truncated or not a valid gzip file; "
            "delete it so that it is downloaded again, or replace it with a good copy."
        ) from e


def read_idx(path: Path, expected_magic: int) -> torch.Tensor:
    """Read an IDX file of unsigned bytes into a uint8 tensor, validating its header.

    ``expected_magic`` is :data:`IMAGES_MAGIC` or :data:`LABELS_MAGIC`.
    """
    data = _read_bytes(path)
    ndim = expected_magic & 0xFF
    header_size = 4 + 4 * ndim
    magic = struct.unpack(">i", data[:4])[0] if len(data) >= 4 else None
    if magic is not None and magic != expected_magic:
        raise IDXFormatError(
            f"{path} has IDX magic number {magic}, expected {expected_magic} "
            f"({'images' if expected_magic == IMAGES_MAGIC else 'labels'}). The file is corrupt "
            "or is not the file its name says; replace it with the official one."
        )
    if len(data) < header_size:
        raise IDXFormatError(
            f"{path} is too short to be an IDX file ({len(data)} bytes); it is truncated or "
            "empty. Delete it so that it is downloaded again."
        )
    shape = struct.unpack(f">{ndim}i", data[4:header_size])
    expected_size = int(np.prod(shape))
    payload = len(data) - header_size
    if payload != expected_size:
        raise IDXFormatError(
            f"{path} declares shape {tuple(shape)} ({expected_size} bytes of data) but holds "
            f"{payload} bytes: the file is truncated or corrupt. Delete it so that it is "
            "downloaded again."
        )
    array = np.frombuffer(data, dtype=np.uint8, offset=header_size).reshape(shape)
    return torch.from_numpy(array.copy())


def read_images_and_labels(
    images_path: Path, labels_path: Path, num_classes: int, image_size: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Read a pair of IDX files and check that they describe the same labelled images."""
    images = read_idx(images_path, IMAGES_MAGIC)
    labels = read_idx(labels_path, LABELS_MAGIC)
    if tuple(images.shape[1:]) != image_size:
        raise IDXFormatError(
            f"{images_path} holds images of size {tuple(images.shape[1:])}, expected "
            f"{image_size}. It is not a Fashion-MNIST images file; replace it."
        )
    if len(images) != len(labels):
        raise IDXFormatError(
            f"{images_path} holds {len(images)} images but {labels_path} holds {len(labels)} "
            "labels. One of the two files is from another dataset or split; replace it."
        )
    if len(labels) and int(labels.max()) >= num_classes:
        raise IDXFormatError(
            f"{labels_path} holds label {int(labels.max())}, outside 0..{num_classes - 1}. "
            "The file is corrupt or from another dataset; replace it."
        )
    return images, labels


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in chunks."""
    digest = hashlib.new(algorithm)
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# A connection that breaks mid-transfer is worth retrying; a host that cannot be resolved or
# reached is not (the caller tries the next mirror and, with no network, fails within seconds).
_TRANSIENT_ERRORS = (ConnectionResetError, http.client.IncompleteRead, TimeoutError, socket.timeout)


def download(
    urls: Sequence[str],
    destination: Path,
    md5: str,
    retries: int = 3,
    timeout: float = 10.0,
) -> None:
    """Download the first URL that works to ``destination``, verify its MD5, write atomically.

    The file is written to a temporary file in the same directory and renamed only after its
    checksum matches, so an interrupted download never leaves a partial file behind.
    Raises :class:`DataError` when no mirror delivers a file with the right checksum.
    """
    created = [d for d in (destination.parent, *destination.parent.parents) if not d.exists()]
    destination.parent.mkdir(parents=True, exist_ok=True)
    failures: list[str] = []
    for url in urls:
        for attempt in range(1, retries + 1):
            try:
                _fetch_verified(url, destination, md5, timeout)
                return
            except _TRANSIENT_ERRORS as e:
                failures.append(f"{url} (attempt {attempt}): {e!r}")
                time.sleep(min(2**attempt, 8) * 0.25)
            except (urllib.error.URLError, OSError, ValueError) as e:
                failures.append(f"{url}: {e}")
                break
    for directory in created:  # innermost first: a failed download leaves no empty directories
        with contextlib.suppress(OSError):
            directory.rmdir()
    raise DataError(
        f"Could not download {destination.name} from any mirror: " + "; ".join(failures)
    )


def _fetch_verified(url: str, destination: Path, md5: str, timeout: float) -> None:
    def fetch(tmp: Path) -> None:  # raising keeps the temporary file from ``destination``
        digest = hashlib.md5()
        with tmp.open("wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            expected = resp.headers.get("Content-Length")
            received = 0
            for chunk in iter(lambda: resp.read(1 << 20), b""):
                digest.update(chunk)
                out.write(chunk)
                received += len(chunk)
        if expected is not None and received < int(expected):
            raise http.client.IncompleteRead(b"", int(expected) - received)  # dropped: retry
        if digest.hexdigest() != md5:
            raise ValueError(f"MD5 {digest.hexdigest()} does not match the official {md5}")

    write_atomic(destination, fetch)
