"""A Hydra callback that checks the output directory before Hydra creates it, so that an
unwritable ``paths.log_dir`` is one paragraph rather than Hydra's traceback."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from sweeplab.errors import ConfigError, exit_with

__all__ = ["WritableOutputs", "writable_dir"]


class WritableOutputs(Callback):
    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        # hydra.run.dir holds ${now:...}, which resolves only once the run has started
        _or_exit(Path(config.paths.log_dir))

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        _or_exit(Path(config.hydra.sweep.dir))


def writable_dir(path: Path) -> Path:
    """Create ``path`` if needed and check that files can be written in it."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=path).close()
    except OSError as e:
        raise ConfigError(
            f"The output directory {path} is not writable ({e.strerror}): set a writable one "
            "with paths.log_dir=<dir> (runs go to <dir>/runs, sweeps to <dir>/sweeps), or "
            "hydra.sweep.dir=<dir> for one sweep."
        ) from None
    return path


def _or_exit(path: Path) -> None:
    try:
        writable_dir(path)
    except ConfigError as e:
        exit_with(e)
