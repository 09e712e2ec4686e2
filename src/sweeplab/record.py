"""The reproducibility record written into every run directory as ``metrics.json``."""

from __future__ import annotations

import json
import math
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from sweeplab.files import write_text_atomic

__all__ = ["METRICS_FILE", "TRACKED_PACKAGES", "environment", "git_commit", "read", "write"]

METRICS_FILE = "metrics.json"
TRACKED_PACKAGES = ("torch", "pytorch-lightning", "torchmetrics", "hydra-core", "optuna", "wandb")


def git_commit(directory: Path) -> str | None:
    """The commit checked out in ``directory``, with ``-dirty`` when files were changed or
    files git does not track (and does not ignore) are there: both can change a run."""
    try:
        commit = _git(directory, "rev-parse", "HEAD")
        dirty = _git(directory, "status", "--porcelain")
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{commit}-dirty" if dirty else commit


def _git(directory: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=directory, capture_output=True, text=True, check=True, timeout=10
    )
    return done.stdout.strip()


def environment() -> dict[str, Any]:
    versions = {}
    for package in TRACKED_PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {"python": platform.python_version(), "packages": versions}


def write(run_dir: Path, record: dict[str, Any]) -> Path:
    """Write ``metrics.json`` atomically: a killed run never leaves half a file."""
    text = json.dumps(_json_safe(record), indent=2) + "\n"
    return write_text_atomic(run_dir / METRICS_FILE, text)


def read(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / METRICS_FILE).read_text())


def _json_safe(value: Any) -> Any:
    # JSON has no NaN or infinity; a diverged run records null rather than an invalid file.
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
