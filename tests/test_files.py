"""Atomic writes (sweeplab.files): all of the new file or the old one, never a temporary."""

from __future__ import annotations

from pathlib import Path

import pytest

from sweeplab.files import write_atomic, write_text_atomic


def test_a_write_replaces_the_file_and_leaves_nothing_else(tmp_path: Path) -> None:
    path = tmp_path / "results.yaml"
    assert write_text_atomic(path, "old\n") == path
    write_atomic(path, lambda tmp: tmp.write_bytes(b"new\n"))
    assert path.read_text() == "new\n"
    assert [p.name for p in tmp_path.iterdir()] == ["results.yaml"]


def test_a_failing_writer_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "metrics.json"
    path.write_text("old\n")

    def half_then_fail(tmp: Path) -> None:
        tmp.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomic(path, half_then_fail)
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_a_writer_that_fails_before_writing_leaves_no_file(tmp_path: Path) -> None:
    path = tmp_path / "plot.png"

    def fail(tmp: Path) -> None:
        raise ValueError("cannot draw")

    with pytest.raises(ValueError, match="cannot draw"):
        write_atomic(path, fail)
    assert list(tmp_path.iterdir()) == []


def test_the_temporary_file_is_hidden_next_to_the_target(tmp_path: Path) -> None:
    seen: list[Path] = []

    def write(tmp: Path) -> None:
        seen.append(tmp)
        tmp.write_text("x")

    write_atomic(tmp_path / "trials.csv", write)
    write_atomic(tmp_path / "trials.csv", write)
    assert all(p.parent == tmp_path and p.name.startswith(".trials.csv.") for p in seen)
    assert seen[0] != seen[1]  # a fresh name per call: concurrent writers do not collide
