"""``sweeplab init <dir>``: a user repository that trains and sweeps as written, copied from
the starter files inside the package (``sweeplab/starter/``, real files that the tests run)."""

from __future__ import annotations

import shutil
from pathlib import Path

from sweeplab.errors import ConfigError

__all__ = ["STARTER", "write_starter"]

STARTER = Path(__file__).parent / "starter"


def write_starter(destination: Path) -> list[Path]:
    """Copy the starter into ``destination`` (new, or an empty directory); return the files
    written, relative to it."""
    if destination.exists() and (not destination.is_dir() or any(destination.iterdir())):
        raise ConfigError(
            f"{destination} already exists and is not an empty directory: sweeplab init writes "
            "a new repository; give a new directory's name."
        )
    shutil.copytree(
        STARTER, destination, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__")
    )
    return sorted(p.relative_to(destination) for p in destination.rglob("*") if p.is_file())
