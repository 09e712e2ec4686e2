"""Training: ``run(cfg)`` fits (and tests) one model and writes its record.

A sweep trial is the same run with its sampled overrides and a :class:`TrialContext` (the
``sweep_trial`` node): it reports each epoch to its Optuna trial, which may prune it, and a
user error fails the trial instead of ending the process.
"""

from __future__ import annotations

import functools
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

from sweeplab import (
    build,
    checks,
    costs,
    outputs,
    process,
    quiet,
    record,
    seeds,
    signals,
    tracking,
    trainers,
)
from sweeplab.errors import USER_ERRORS, ConfigError, exit_with, user_error
from sweeplab.sweep import limits, resume
from sweeplab.sweep import study as stored
from sweeplab.sweep.context import NODE, TrialContext, is_pruned
from sweeplab.sweep.progress import format_number
from sweeplab.timing import EpochClock

__all__ = ["main", "objective", "run", "trial_context"]

log = logging.getLogger(__name__)


def run(cfg: DictConfig, *, keeps_outcome: bool = True) -> dict[str, Any]:
    """Fit the configured model, test its best checkpoint, write ``metrics.json``.

    Returns the record that ``metrics.json`` holds. A sweep trial's run also keeps its value(s)
    on its trial (unless ``keeps_outcome`` is false: one seed of several is not the outcome).
    """
    started = time.perf_counter()
    checks.check_run(cfg)
    context = trial_context(cfg)
    log.info(_start_line(cfg))
    # seed=null draws a seed, so that the record still says how to repeat the run.
    seed = cfg.seed if cfg.get("seed") is not None else secrets.randbelow(2**31)
    pl.seed_everything(seed, workers=True, verbose=False)

    checks.check_optimizer(cfg)
    datamodule = build.instantiate(cfg.data, "data")
    model = build.instantiate(cfg.model, "model")
    checks.check_logged(cfg, model)
    callbacks = build.instantiate_group(cfg.get("callbacks"), "callbacks")
    if context is not None:
        callbacks.append(_pruning(context, cfg.monitor))
        callbacks += limits.for_trial(context)  # hydra.sweeper.timeout and trial_timeout
    datamodule.prepare_data()  # missing data fails here, before any logger starts a run
    loggers = build.instantiate_group(cfg.get("logger"), "logger")
    if context is not None:
        callbacks = resume.resumable(context, callbacks, loggers)
    if not loggers:  # the LR monitor has nowhere to write without a logger
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    clock = EpochClock()
    process.apply(keep_freed_memory=cfg.trainer.get("keep_freed_memory", True))
    callbacks, switches = quiet.trainer_switches(cfg.trainer, callbacks, context is not None)
    if context is not None:
        switches.update(resume.without_lightning_requeue(cfg.trainer))
    trainer = build.instantiate(
        trainers.without_process_settings(cfg.trainer),
        "trainer",
        callbacks=[*callbacks, clock],
        logger=loggers,
        **switches,
    )

    resume_from = resume.resume_checkpoint(context, trainer, Path(cfg.paths.output_dir))
    state, keep_last = "failed", False
    try:
        for logger in loggers:
            logger.log_hyperparams(tracking.flatten(build.to_plain(cfg)))
        trainer.fit(model, datamodule=datamodule, ckpt_path=resume_from)
        signals.raise_if_stopped()
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
        state = "pruned" if is_pruned(e) else "failed"
        stop = signals.as_stopped(e)
        keep_last = stop is not None  # a stopped trial is queued again, and goes on from it
        if stop is None:
            raise
        if context is None:  # a trial is run again by the sweep's resume instead
            stop = _keep_stopped(cfg, stop, trainer, _record(cfg, trainer, clock, seed, started))
        raise stop from None
    finally:
        tracking.finish(loggers, state)
        if context is not None and state != "complete" and not keep_last:
            resume.drop_last_checkpoints(context, trainer, resume_from)

    result = {**_record(cfg, trainer, clock, seed, started), "metrics": metrics}
    try:
        with signals.deferred():  # a stop waits for the record and the value kept on the trial
            path = record.write(Path(cfg.paths.output_dir), result)
            if context is not None and keeps_outcome:
                stored.keep_outcome(context.trial(), objective(result))
    finally:  # its last.ckpt goes once nothing can send the trial back to it
        if context is not None:
            resume.drop_last_checkpoints(context, trainer, resume_from)
    _print_summary(cfg, metrics, path)
    return result


def _record(
    cfg: DictConfig, trainer: pl.Trainer, clock: EpochClock, seed: int, started: float
) -> dict[str, Any]:
    """The run's record as far as it got: the metrics logged, the best checkpoint so far."""
    datamodule = trainer.datamodule
    return {
        "metrics": _scalars(trainer.callback_metrics),
        "optimized_metric": _optimized(cfg),
        "ckpt_path": _best_checkpoint(trainer),
        "seed": seed,
        "epochs": trainer.current_epoch,
        "epoch_seconds": clock.seconds,
        "duration_s": round(time.perf_counter() - started, 2),
        "git_commit": record.git_commit(Path(cfg.paths.root_dir)),
        "environment": record.environment(),
        "data_sha256": getattr(datamodule, "data_sha256", {}),
    }


def _keep_stopped(
    cfg: DictConfig, stop: signals.Stopped, trainer: pl.Trainer, kept: dict[str, Any]
) -> signals.Stopped:
    """Write a stopped single run's record (marked ``stopped_by``); the stop, with its line."""
    run_dir = Path(cfg.paths.output_dir)
    record.write(run_dir, {**kept, "stopped_by": stop.name})
    files = [Path(kept["ckpt_path"]).name] if kept["ckpt_path"] else []
    line = signals.run_line(
        stop.name, kept["epochs"], trainer.max_epochs or 0, run_dir, [*files, record.METRICS_FILE]
    )
    return signals.Stopped(stop.signum, line)


def _optimized(cfg: DictConfig) -> str | list[str]:
    """``optimized_metric`` as the record keeps it: a name, or a list for several."""
    names = checks.objectives(cfg)[0]
    return names if len(names) > 1 else names[0]


def _costs(cfg: DictConfig, model: Any, trainer: pl.Trainer, datamodule: Any) -> dict[str, float]:
    measured = {costs.PARAMS: float(costs.parameter_count(model))}
    if cfg.get("measure_latency"):
        shape = getattr(datamodule, "input_shape", None) or cfg.model.net.input_shape
        measured[costs.LATENCY] = costs.inference_latency_ms(model, trainer, shape)
    return measured


def main(cfg: DictConfig) -> float | tuple[float, ...]:
    """The ``train.py`` task: run (over ``seeds`` seeds), return the optimised metric.

    A user error becomes one paragraph on stderr and exit status 1, or in a sweep trial an
    exception that fails the trial (its context says which). SIGTERM or SIGINT stops a single
    run with one line and status 128 + signal; in a trial the sweep handles the stop.
    """
    try:
        with signals.stopping(), quiet.run_console(trial=_context_or_none(cfg) is not None):
            return _main(cfg)
    except signals.Stopped as stop:
        if _context_or_none(cfg) is not None:
            raise
        signals.exit_stopped(
            stop, f"Stopped by {stop.name} before training started; run the same command to train."
        )


def _main(cfg: DictConfig) -> float | tuple[float, ...]:
    try:
        _check_mode()
        checks.check_run(cfg)
        if cfg.get("seeds", 1) > 1:
            first_seed = cfg.seed if cfg.get("seed") is not None else secrets.randbelow(2**31)
            summary = seeds.run_seeds(cfg, functools.partial(run, keeps_outcome=False), first_seed)
            Console().print(seeds.comparison_table([Path(cfg.paths.output_dir)]))
            means = {name: m["mean"] for name, m in summary["metrics"].items()}
            values = objective({"metrics": means, "optimized_metric": _optimized(cfg)})
            if (context := trial_context(cfg)) is not None:
                stored.keep_outcome(context.trial(), values)
            return values
        return objective(run(cfg))
    except USER_ERRORS as e:
        error = user_error(e)
        context = _context_or_none(cfg)
        if context is not None and context.user_errors == "raise":
            raise error from None  # the sweeper records the failed trial and goes on
        outputs.discard_refused_run(cfg)
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


def trial_context(cfg: DictConfig) -> TrialContext | None:
    """The run's trial context, when it is a trial of a sweep (a job of a multirun). A trial
    run again on its own, from its saved overrides, is an ordinary run."""
    if cfg.get(NODE) is None:
        return None
    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        log.info("%s is set, but this run is not part of a sweep: it runs on its own.", NODE)
        return None
    return TrialContext.from_config(cfg)


def _context_or_none(cfg: DictConfig) -> TrialContext | None:
    """The trial context, or ``None`` when the run has none or it is the error itself."""
    try:
        return trial_context(cfg)
    except USER_ERRORS:
        return None


def _pruning(context: TrialContext, monitor: str) -> pl.Callback:
    from sweeplab.sweep.pruning import OptunaPruning  # Optuna's callback: trials only

    return OptunaPruning(context.trial(), monitor, resume.failed_trial(context))


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


def _start_line(cfg: DictConfig) -> str:
    """What runs and where it writes: the config choices, the epochs, the run directory."""
    choices = HydraConfig.get().runtime.choices if HydraConfig.initialized() else {}
    chosen = " ".join(
        f"{group}={option}"
        for group, option in choices.items()
        if option is not None and not group.startswith(("hydra", "paths"))
    )
    return (
        f"{cfg.name}: {chosen or 'defaults'}, {cfg.trainer.get('max_epochs')} epoch(s), "
        f"writing to {cfg.paths.output_dir}"
    )


def _print_summary(cfg: DictConfig, metrics: dict[str, float], path: Path) -> None:
    """The results table and where the record is; a sweep trial prints its one line instead."""
    if _context_or_none(cfg) is not None and not quiet.verbose():
        log.info("Record: %s", path)  # in the trial's train.log
        return
    table = Table(title=f"{cfg.name}: results", show_header=True)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name in sorted(metrics):
        marker = " *" if name in checks.objectives(cfg)[0] else ""
        table.add_row(name + marker, format_number(metrics[name]))
    console = Console(stderr=False, soft_wrap=True)  # a path is never split, even in a pipe
    console.print(table)
    console.print(f"Record: {path}  (* = optimized_metric)", markup=False, highlight=False)
