"""Output directories: checked before anything is written in them, created only when a run or
a sweep writes, and removed again when a run is refused before it began, so that a refused
command leaves nothing behind."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from sweeplab.checks import check_name
from sweeplab.errors import ConfigError, SweeplabError, exit_with

__all__ = [
    "WritableOutputs",
    "check_writable",
    "discard_refused_run",
    "discard_unused_run_dir",
    "writable_dir",
]

HYDRA_BOOKKEEPING = ".hydra"  # what Hydra writes in a run's directory as it starts (and a log)


class WritableOutputs(Callback):
    """Checks, before Hydra creates a run's or a sweep's directory, that it can be made where
    the config says; creates nothing."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        # hydra.run.dir holds ${now:...}, which resolves only once the run has started
        _check_or_exit(_written_name(config), Path(config.paths.log_dir))

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        _check_or_exit(_written_name(config), Path(config.hydra.sweep.dir))


def check_writable(path: Path) -> None:
    """That ``path`` is, or can be made as, a directory to write in: its nearest existing
    ancestor is a directory that takes a file (tried with a temporary file, deleted at once)."""
    existing = next(p for p in (path, *path.parents) if p.exists())
    try:
        if not existing.is_dir():
            raise NotADirectoryError(20, "Not a directory", str(existing))
        tempfile.TemporaryFile(dir=existing).close()
    except OSError as e:
        raise ConfigError(
            f"The output directory {path} is not writable ({e.strerror}): set a writable one "
            "with paths.log_dir=<dir> (runs go to <dir>/runs, sweeps to <dir>/sweeps), or "
            "hydra.sweep.dir=<dir> for one sweep."
        ) from None


def writable_dir(path: Path) -> Path:
    """``path``, checked, then created if needed."""
    check_writable(path)
    path.mkdir(parents=True, exist_ok=True)
    return path


def discard_refused_run(cfg: DictConfig) -> None:
    """A run (train or eval) refused before it began leaves no directory of Hydra's files."""
    if not HydraConfig.initialized():
        return
    output_dir = OmegaConf.select(HydraConfig.get(), "runtime.output_dir", default=None)
    if output_dir is None:  # composed without a run (a test, a notebook)
        return
    log_dir = OmegaConf.select(cfg, "paths.log_dir", throw_on_resolution_failure=False)
    discard_unused_run_dir(Path(output_dir), Path(log_dir or output_dir))


def discard_unused_run_dir(output_dir: Path, log_dir: Path) -> None:
    """Remove a run's directory that holds only what Hydra wrote as the run started (its
    .hydra/ and the job's log), then its parents inside ``log_dir`` (and ``log_dir``) that
    are left empty: a run refused before it began leaves nothing behind."""
    if not output_dir.is_dir() or any(
        entry.name != HYDRA_BOOKKEEPING and entry.suffix != ".log" for entry in output_dir.iterdir()
    ):
        return
    shutil.rmtree(output_dir, ignore_errors=True)
    log_dir = log_dir.resolve()
    for parent in output_dir.resolve().parents:
        if not parent.is_relative_to(log_dir):
            break
        try:
            parent.rmdir()  # only when empty: other runs' directories stay
        except OSError:
            break


def _written_name(config: DictConfig) -> Any:
    """``name`` as given; ``None`` for one taken from Hydra (the model's), not yet known."""
    name = OmegaConf.to_container(config, resolve=False).get("name")  # type: ignore[union-attr]
    return None if isinstance(name, str) and name.startswith("${hydra:") else name


def _check_or_exit(name: Any, path: Path) -> None:
    try:
        if name is not None:
            check_name(name)  # it names a directory: ../.. would leave the log tree
        check_writable(path)
    except SweeplabError as e:
        exit_with(e)
