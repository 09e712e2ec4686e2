"""Weights & Biases logging that never blocks a run.

Without credentials, or with credentials but no reachable server, a run logs offline and
says how to upload it later; with both it logs online. ``WANDB_MODE`` always wins.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlparse

from hydra.core.hydra_config import HydraConfig
from pytorch_lightning.loggers import WandbLogger

from sweeplab import quiet
from sweeplab.errors import ConfigError
from sweeplab.redaction import redact

__all__ = [
    "DEFAULT_BASE_URL",
    "MODES",
    "console_settings",
    "continue_run",
    "finish",
    "flatten",
    "run_id",
    "wandb_logger",
    "wandb_mode",
]

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.wandb.ai"
MODES = ("online", "offline", "dryrun", "run", "disabled", "shared")


def wandb_logger(offline: bool | None = None, **kwargs: Any) -> WandbLogger:
    """Build a ``WandbLogger``; ``offline=None`` picks online only when it can work, and
    ``WANDB_MODE=disabled`` logs nothing and writes nothing. The run is tagged with its
    architecture (the model's config option), so W&B groups an architecture study's trials."""
    mode = wandb_mode(offline)
    tags = list(kwargs.pop("tags", None) or [])
    architecture = _architecture()
    kwargs["tags"] = [*tags, architecture] if architecture and architecture not in tags else tags
    if "settings" not in kwargs:
        kwargs["settings"] = console_settings(mode)
    logger = WandbLogger(mode=mode, **kwargs)
    # Lightning passes anonymous=None, which W&B 0.31 warns about though it has no effect.
    logger._wandb_init.pop("anonymous", None)
    return logger


def _architecture() -> str | None:
    """The run's ``model`` option, as Hydra chose it (``None`` outside a Hydra run)."""
    if not HydraConfig.initialized():
        return None
    return HydraConfig.get().runtime.choices.get("model")


def continue_run(loggers: list[Any], run_id: str | None) -> None:
    """Have the W&B loggers that have not started their run yet log to run ``run_id`` (a
    trial that goes on from a failed one continues its run); ``None`` leaves them as they are.

    Lightning's ``WandbLogger`` starts its run with ``resume="allow"`` and the ``id`` it was
    built with; the loggers are built from the config, so the id is set on them here.
    """
    if not run_id:
        return
    for logger in loggers:
        if isinstance(logger, WandbLogger) and logger._experiment is None:
            logger._wandb_init.update(id=run_id, resume="allow")
            logger._id = run_id


def run_id(loggers: list[Any]) -> str | None:
    """The id of the W&B run the loggers log to (started here if not yet), or ``None``."""
    for logger in loggers:
        if isinstance(logger, WandbLogger) and logger._wandb_init.get("mode") != "disabled":
            return str(logger.experiment.id)
    return None


def console_settings(mode: str) -> Any:
    """W&B settings that keep W&B's own console lines off at the default verbosity: an
    online run keeps its link (``quiet``), an offline one prints nothing (``silent``:
    :func:`finish` says where it is and how to upload it). W&B's warnings still show."""
    import wandb

    if quiet.verbose():
        return None
    return wandb.Settings(**{"quiet" if mode == "online" else "silent": True})


def wandb_mode(offline: bool | None = None) -> str:
    """``disabled`` under ``WANDB_MODE=disabled``; else ``offline`` or ``online``, where
    ``offline=None`` picks online only when it can work."""
    mode = os.environ.get("WANDB_MODE", "").lower()
    if mode and mode not in MODES:
        raise ConfigError(
            f"The environment variable WANDB_MODE={mode!r} is invalid: use online, offline or "
            "disabled (or unset it: sweeplab logs online when it can, offline otherwise)."
        )
    if mode == "disabled":
        return "disabled"
    if offline is not None and not isinstance(offline, bool):
        raise ConfigError(
            f"`logger.wandb.offline`={offline!r} is invalid: use true, false, or null to log "
            "online only when credentials and a server are there."
        )
    if offline is None:
        offline = _should_run_offline()
    return "offline" if offline else "online"


def _should_run_offline() -> bool:
    mode = os.environ.get("WANDB_MODE", "").lower()
    if mode:
        return mode in ("offline", "dryrun")
    base_url = os.environ.get("WANDB_BASE_URL", DEFAULT_BASE_URL)
    if not _has_credentials(base_url):
        log.info("No W&B credentials found (WANDB_API_KEY or `wandb login`): logging offline.")
        return True
    if not _reachable(base_url):
        log.info("W&B server %s is unreachable: logging offline.", base_url)
        return True
    return False


def _has_credentials(base_url: str) -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        import netrc

        host = urlparse(base_url).hostname or ""
        return netrc.netrc().authenticators(host) is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def _reachable(base_url: str, timeout: float = 3.0) -> bool:
    parsed = urlparse(base_url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"model": {"net": {"units": 5}}}`` -> ``{"model.net.units": 5}``; lists stay values.

    W&B's parallel-coordinates and importance panels want one scalar column per key.
    """
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:  # a storage URL's password never reaches W&B
            flat[name] = redact(value) if isinstance(value, str) else value
    return flat


def finish(loggers: list[Any], state: str) -> None:
    """Close W&B runs, recording ``state`` (complete, pruned, failed) in their summary.

    The next trial in the same process must start a new run. For offline runs, say where
    they are and how to upload them.
    """
    for logger in loggers:
        if not isinstance(logger, WandbLogger) or logger._experiment is None:
            continue
        run = logger.experiment
        run.summary["state"] = state
        run_dir = os.path.dirname(run.dir)
        offline = run.settings.mode in ("offline", "dryrun")
        run.finish(exit_code=0 if state != "failed" else 1)
        if offline:
            log.info("W&B run saved offline in %s; upload it with: wandb sync %s", run_dir, run_dir)
