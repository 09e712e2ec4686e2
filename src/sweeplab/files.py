"""Atomic file writes: a reader, or a writer killed halfway, never sees half a file."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path

__all__ = ["write_atomic", "write_text_atomic"]


def write_atomic(path: Path, write: Callable[[Path], None]) -> Path:
    """Have ``write`` write a temporary file next to ``path``, then rename it to ``path``.

    The rename is atomic on one file system, so ``path`` holds either the old file or the
    whole new one. If ``write`` raises, ``path`` is left as it was and the temporary file is
    removed. The temporary name is unique per process and call, and hidden (``.name.*.tmp``);
    ``write`` creates the file itself, so it gets the usual permissions.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_text_atomic(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`write_atomic`)."""
    return write_atomic(path, lambda tmp: tmp.write_text(text))
