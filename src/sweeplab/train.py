"""Training: ``run(cfg)`` fits (and tests) one model and writes its record.

A sweep trial is the same run with overrides; nothing here knows about sweeps.
"""

from __future__ import annotations

import logging
import secrets
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig
from pytorch_lightning.callbacks import LearningRateMonitor, ModelCheckpoint
from rich.console import Console
from rich.table import Table

from sweeplab import config, costs, record, seeds, tracking
from sweeplab.errors import ConfigError, exit_with
from sweeplab.timing import EpochClock

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> dict[str, Any]:
    """Fit the configured model, test its best checkpoint, write ``metrics.json``.

    Returns the record that ``metrics.json`` holds.
    """
    started = time.perf_counter()
    config.check_run(cfg)
    # seed=null draws a seed, so that the record still says how to repeat the run.
    seed = cfg.seed if cfg.get("seed") is not None else secrets.randbelow(2**31)
    pl.seed_everything(seed, workers=True, verbose=False)

    config.check_optimizer(cfg)
    datamodule = config.instantiate(cfg.data, "data")
    model = config.instantiate(cfg.model, "model")
    config.check_logged(cfg, model)
    callbacks = config.instantiate_group(cfg.get("callbacks"), "callbacks")
    datamodule.prepare_data()  # missing data fails here, before any logger starts a run
    loggers = config.instantiate_group(cfg.get("logger"), "logger")
    if not loggers:  # the LR monitor has nowhere to write without a logger
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    clock = EpochClock()
    trainer = config.instantiate(
        cfg.trainer, "trainer", callbacks=[*callbacks, clock], logger=loggers
    )

    state = "failed"
    try:
        for logger in loggers:
            logger.log_hyperparams(tracking.flatten(config.to_plain(cfg)))
        trainer.fit(model, datamodule=datamodule)
        metrics = _scalars(trainer.callback_metrics)
        metrics.update(_costs(cfg, model, trainer, datamodule))
        for logger in loggers:  # in the W&B summary next to the accuracy, for Pareto plots
            logger.log_metrics({k: metrics[k] for k in costs.COST_METRICS if k in metrics})
        ckpt_path = _best_checkpoint(trainer)
        if cfg.get("test"):
            if ckpt_path is None:
                log.warning("No checkpoint callback: testing the last epoch's weights.")
            trainer.test(model, datamodule=datamodule, ckpt_path=ckpt_path, verbose=False)
            metrics.update(_scalars(trainer.callback_metrics, prefix="test/"))
        state = "complete"
    except BaseException as e:
        # an exception may say how the run ended, e.g. "pruned" (sweep.pruning.TrialPruned)
        state = getattr(e, "run_state", "failed")
        raise
    finally:
        tracking.finish(loggers, state)

    run_dir = Path(cfg.paths.output_dir)
    result = {
        "metrics": metrics,
        "optimized_metric": _optimized(cfg),
        "ckpt_path": ckpt_path,
        "seed": seed,
        "epochs": trainer.current_epoch,
        "epoch_seconds": clock.seconds,
        "duration_s": round(time.perf_counter() - started, 2),
        "git_commit": record.git_commit(Path(cfg.paths.root_dir)),
        "environment": record.environment(),
        "data_sha256": getattr(datamodule, "data_sha256", {}),
    }
    path = record.write(run_dir, result)
    _print_summary(cfg, metrics, path)
    return result


def _optimized(cfg: DictConfig) -> str | list[str]:
    """``optimized_metric`` as the record keeps it: a name, or a list for several."""
    names = config.objectives(cfg)[0]
    return names if len(names) > 1 else names[0]


def _costs(cfg: DictConfig, model: Any, trainer: pl.Trainer, datamodule: Any) -> dict[str, float]:
    measured = {costs.PARAMS: float(costs.parameter_count(model))}
    if cfg.get("measure_latency"):
        shape = getattr(datamodule, "input_shape", None) or cfg.model.net.input_shape
        measured[costs.LATENCY] = costs.inference_latency_ms(model, trainer, shape)
    return measured


def main(cfg: DictConfig) -> float | tuple[float, ...]:
    """The ``train.py`` task: run (over ``seeds`` seeds), return the optimised metric.

    A user error in a single run becomes one paragraph on stderr and exit status 1.
    """
    try:
        _check_mode()
        config.check_run(cfg)
        if cfg.get("seeds", 1) > 1:
            first_seed = cfg.seed if cfg.get("seed") is not None else secrets.randbelow(2**31)
            summary = seeds.run_seeds(cfg, run, first_seed)
            Console().print(seeds.comparison_table([Path(cfg.paths.output_dir)]))
            means = {name: m["mean"] for name, m in summary["metrics"].items()}
            return objective({"metrics": means, "optimized_metric": _optimized(cfg)})
        return objective(run(cfg))
    except config.USER_ERRORS as e:
        error = config.user_error(e)
        if _in_sweeplab_sweep():
            raise error from None  # the sweeper records the failed trial and goes on
        exit_with(error)


def _check_mode() -> None:
    """A search config without ``-m`` would train once with the defaults, silently."""
    if not HydraConfig.initialized() or HydraConfig.get().mode == RunMode.MULTIRUN:
        return
    search = HydraConfig.get().runtime.choices.get("hparams_search")
    if search:
        raise ConfigError(
            f"hparams_search={search} describes a sweep, but the command runs once: add -m "
            f"(python train.py -m hparams_search={search} ...), or drop hparams_search for "
            "a single run."
        )


def _in_sweeplab_sweep() -> bool:
    """Whether this run is a trial of sweeplab's sweeper, which records a failed trial and
    goes on (Hydra's basic sweeper would stop with a traceback instead)."""
    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return False
    return "sweeplab" in str(HydraConfig.get().sweeper.get("_target_", ""))


def objective(result: dict[str, Any]) -> float | tuple[float, ...]:
    """The value of ``optimized_metric`` in a run's record; a tuple for several objectives."""
    names = result["optimized_metric"]
    several = not isinstance(names, str)
    values = []
    for name in names if several else [names]:
        if name not in result["metrics"]:
            raise ConfigError(
                f"`optimized_metric`={name!r} was not logged by the run; logged metrics are "
                f"{', '.join(sorted(result['metrics']))}. Set optimized_metric to one of them."
            )
        values.append(float(result["metrics"][name]))
    return tuple(values) if several else values[0]


def _scalars(metrics: dict[str, Any], prefix: str = "") -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if k.startswith(prefix)}


def _best_checkpoint(trainer: pl.Trainer) -> str | None:
    callback = trainer.checkpoint_callback
    if isinstance(callback, ModelCheckpoint) and callback.best_model_path:
        return callback.best_model_path
    return None


def _print_summary(cfg: DictConfig, metrics: dict[str, float], path: Path) -> None:
    table = Table(title=f"{cfg.name}: results", show_header=True)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name in sorted(metrics):
        marker = " *" if name in config.objectives(cfg)[0] else ""
        table.add_row(name + marker, f"{metrics[name]:.4f}")
    console = Console(stderr=False)
    console.print(table)
    console.print(f"Record: {path}  (* = optimized_metric)")
