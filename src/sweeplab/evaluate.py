"""Evaluation: score a trained checkpoint on the test split."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from sweeplab import build, checks, outputs, process, record, trainers
from sweeplab.errors import USER_ERRORS, ConfigError, exit_with, user_error

__all__ = ["data_config", "main", "read_weights", "run", "training_config"]

log = logging.getLogger(__name__)


def training_config(ckpt_path: Path, train_run_dir: str | None) -> DictConfig:
    """The resolved config of the run that wrote ``ckpt_path``."""
    run_dir = Path(train_run_dir) if train_run_dir else ckpt_path.parent.parent
    saved = run_dir / ".hydra" / "config.yaml"
    if not saved.is_file():
        raise ConfigError(
            f"Cannot find the training config {saved} for checkpoint {ckpt_path}: the model is "
            "rebuilt from it. Pass train_run_dir=<the training run's directory> (the one with "
            ".hydra/config.yaml) if the checkpoint was moved."
        )
    try:
        trained = OmegaConf.load(saved)
    except Exception as e:  # not YAML at all
        trained = e
    if not isinstance(trained, DictConfig) or "model" not in trained or "data" not in trained:
        raise ConfigError(
            f"{saved} is not the config of a training run (it must hold `model` and `data`"
            f"{'; ' + type(trained).__name__ if isinstance(trained, Exception) else ''}). Pass "
            "train_run_dir=<the directory of the train.py run that wrote the checkpoint>."
        )
    return trained


def read_weights(ckpt_path: Path) -> dict[str, torch.Tensor]:
    """The model weights of a Lightning checkpoint, read once (tensors and plain data only)
    before anything is built."""
    try:
        state = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    except Exception as e:  # any unpickling failure: truncated, corrupt, not a checkpoint
        state = e
    if not isinstance(state, dict) or "state_dict" not in state:
        # torch's own first line only: its advice to unpickle with weights_only=False would
        # run arbitrary code from an unknown file.
        first_line = str(state).strip().splitlines()[0] if str(state).strip() else ""
        reason = f" ({type(state).__name__}: {first_line})" if isinstance(state, Exception) else ""
        raise ConfigError(
            f"`ckpt_path`={str(ckpt_path)!r} is not a readable Lightning checkpoint{reason}. "
            "It may be truncated or corrupt; evaluate another checkpoint of the run, or "
            "retrain it."
        )
    return state["state_dict"]


def data_config(trained: DictConfig) -> DictConfig:
    """The training run's data settings (where its data was, its split), with the ``data.*``
    overrides of this command on top."""
    task = HydraConfig.get().overrides.task if HydraConfig.initialized() else []
    overrides = [o.removeprefix("data.") for o in task if o.startswith("data.")]
    plain = OmegaConf.to_container(trained.data, resolve=True)
    return OmegaConf.merge(plain, OmegaConf.from_dotlist(overrides))  # type: ignore[return-value]


def run(cfg: DictConfig) -> dict[str, Any]:
    """Test ``cfg.ckpt_path`` and write ``metrics.json`` into this run's directory."""
    hint = "Point it at a checkpoint train.py wrote: logs/runs/<name>/<time>/checkpoints/best.ckpt."
    if OmegaConf.is_missing(cfg, "ckpt_path"):
        raise ConfigError(f"`ckpt_path` is required: the checkpoint to evaluate. {hint}")
    ckpt_path = Path(cfg.ckpt_path).expanduser()
    if not ckpt_path.is_file():
        raise ConfigError(f"`ckpt_path`={cfg.ckpt_path!r} is not a file. {hint}")
    weights = read_weights(ckpt_path)
    checks.check_seed(cfg.get("seed"))
    if cfg.get("seed") is not None:
        pl.seed_everything(cfg.seed, verbose=False)
    trained = training_config(ckpt_path, cfg.get("train_run_dir"))
    model = build.instantiate(trained.model, "model")
    try:
        model.load_state_dict(weights)
    except RuntimeError as e:
        raise ConfigError(
            f"`ckpt_path`={str(ckpt_path)!r} does not fit the model of its training config "
            f"({str(e).splitlines()[0]}). Pass train_run_dir=<the run that wrote it>."
        ) from None
    datamodule = build.instantiate(data_config(trained), "data")
    datamodule.prepare_data()
    process.apply(keep_freed_memory=cfg.trainer.get("keep_freed_memory", True))
    trainer = build.instantiate(
        trainers.without_process_settings(cfg.trainer), "trainer", logger=False
    )
    trainer.test(model, datamodule=datamodule, verbose=False)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    result = {
        "metrics": metrics,
        "ckpt_path": str(ckpt_path),
        "git_commit": record.git_commit(Path(cfg.paths.root_dir)),
        "environment": record.environment(),
        "data_sha256": datamodule.data_sha256,
    }
    path = record.write(Path(cfg.paths.output_dir), result)
    print(f"test/acc={metrics['test/acc']:.4f}  test/loss={metrics['test/loss']:.4f}  ({path})")
    return result


def main(cfg: DictConfig) -> None:
    """The ``eval.py`` task; a user error becomes one paragraph and exit status 1."""
    try:
        run(cfg)
    except USER_ERRORS as e:
        outputs.discard_refused_run(cfg)
        exit_with(user_error(e))
