from __future__ import annotations

import gzip
import hashlib
import http.server
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from sweeplab.data.idx import (
    IMAGES_MAGIC,
    LABELS_MAGIC,
    IDXFormatError,
    download,
    find_idx_file,
    read_idx,
    read_images_and_labels,
)
from sweeplab.errors import DataError
from tests.idx_files import idx_bytes, write_idx


@pytest.mark.parametrize("name", ["images-idx3-ubyte", "images-idx3-ubyte.gz"])
def test_read_roundtrip_raw_and_gzip(tmp_path: Path, name: str) -> None:
    array = np.random.default_rng(0).integers(0, 256, (5, 28, 28)).astype(np.uint8)
    tensor = read_idx(write_idx(tmp_path / name, array, IMAGES_MAGIC), IMAGES_MAGIC)
    assert tensor.shape == (5, 28, 28)
    assert np.array_equal(tensor.numpy(), array)


def test_find_prefers_raw_then_gzip(tmp_path: Path) -> None:
    assert find_idx_file(tmp_path, "x") is None
    (tmp_path / "x.gz").write_bytes(b"")
    assert find_idx_file(tmp_path, "x") == tmp_path / "x.gz"
    (tmp_path / "x").write_bytes(b"")
    assert find_idx_file(tmp_path, "x") == tmp_path / "x"


def test_wrong_magic_names_file(tmp_path: Path) -> None:
    path = write_idx(tmp_path / "labels", np.zeros(3), LABELS_MAGIC)
    with pytest.raises(IDXFormatError, match=r"labels has IDX magic number 2049, expected 2051"):
        read_idx(path, IMAGES_MAGIC)


def test_truncated_payload_names_file(tmp_path: Path) -> None:
    path = tmp_path / "images"
    path.write_bytes(idx_bytes(np.zeros((4, 28, 28)), IMAGES_MAGIC)[:-10])
    with pytest.raises(IDXFormatError, match=r"images declares shape \(4, 28, 28\).*truncated"):
        read_idx(path, IMAGES_MAGIC)


def test_truncated_header(tmp_path: Path) -> None:
    path = tmp_path / "short"
    path.write_bytes(b"\x00\x00\x08")
    with pytest.raises(IDXFormatError, match="short is too short"):
        read_idx(path, LABELS_MAGIC)


def test_truncated_gzip_names_file(tmp_path: Path) -> None:
    path = tmp_path / "images.gz"
    noise = np.random.default_rng(0).integers(0, 256, (50, 28, 28))
    path.write_bytes(gzip.compress(idx_bytes(noise, IMAGES_MAGIC))[:2000])
    with pytest.raises(IDXFormatError, match=r"Cannot read .*images.gz"):
        read_idx(path, IMAGES_MAGIC)


def test_pair_validation(tmp_path: Path) -> None:
    images = write_idx(tmp_path / "i", np.zeros((3, 28, 28)), IMAGES_MAGIC)
    small = write_idx(tmp_path / "s", np.zeros((3, 27, 28)), IMAGES_MAGIC)
    labels = write_idx(tmp_path / "l", np.array([0, 1, 9]), LABELS_MAGIC)
    too_few = write_idx(tmp_path / "f", np.array([0, 1]), LABELS_MAGIC)
    out_of_range = write_idx(tmp_path / "r", np.array([0, 1, 10]), LABELS_MAGIC)

    x, y = read_images_and_labels(images, labels, 10, (28, 28))
    assert x.shape == (3, 28, 28) and y.tolist() == [0, 1, 9]
    with pytest.raises(IDXFormatError, match=r"images of size \(27, 28\)"):
        read_images_and_labels(small, labels, 10, (28, 28))
    with pytest.raises(IDXFormatError, match="3 images but .* 2 labels"):
        read_images_and_labels(images, too_few, 10, (28, 28))
    with pytest.raises(IDXFormatError, match=r"label 10, outside 0..9"):
        read_images_and_labels(images, out_of_range, 10, (28, 28))


# -- download, against a server on loopback ----------------------------------------------

PAYLOAD = bytes(range(256)) * 400


class _Handler(http.server.BaseHTTPRequestHandler):
    drops_left = 0  # requests to cut off mid-transfer before serving in full

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self.send_response(200)
        self.send_header("Content-Length", str(len(PAYLOAD)))
        self.end_headers()
        if type(self).drops_left > 0:
            type(self).drops_left -= 1
            self.wfile.write(PAYLOAD[:1000])
            self.wfile.flush()
            self.connection.shutdown(2)
            return
        self.wfile.write(PAYLOAD)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    _Handler.drops_left = 0


MD5 = hashlib.md5(PAYLOAD).hexdigest()


def test_download_verifies_md5_and_writes(server: str, tmp_path: Path) -> None:
    target = tmp_path / "sub" / "file.gz"
    download([server + "file.gz"], target, MD5)
    assert target.read_bytes() == PAYLOAD


def test_download_retries_a_dropped_connection(server: str, tmp_path: Path) -> None:
    _Handler.drops_left = 1
    target = tmp_path / "file.gz"
    download([server + "file.gz"], target, MD5)
    assert target.read_bytes() == PAYLOAD
    assert _Handler.drops_left == 0


def test_download_bad_md5_leaves_nothing(server: str, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not match the official"):
        download([server + "file.gz"], tmp_path / "file.gz", "0" * 32)
    assert list(tmp_path.iterdir()) == []


def test_download_falls_back_to_next_mirror(server: str, tmp_path: Path) -> None:
    download(["http://127.0.0.1:9/", server], tmp_path / "f", MD5)
    assert (tmp_path / "f").read_bytes() == PAYLOAD


def test_unreachable_mirror_fails_fast(tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(DataError, match="Could not download f"):
        download(["http://127.0.0.1:9/f"], tmp_path / "new" / "data" / "f", MD5)
    assert time.monotonic() - started < 5
    assert not (tmp_path / "new").exists()  # no empty data directory left behind
