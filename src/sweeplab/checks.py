"""Checks of a run's config that run before training: every value readable, epochs, seeds,
switches, the objectives, the optimizer and schedule, and the metrics the run must log."""

from __future__ import annotations

import math
import re
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from sweeplab.build import instantiate
from sweeplab.costs import LATENCY, PARAMS
from sweeplab.errors import ConfigError, from_omegaconf
from sweeplab.sweep.settings import cpu_cores
from sweeplab.values import is_int, is_number

__all__ = [
    "check_devices",
    "check_logged",
    "check_name",
    "check_optimizer",
    "check_parts",
    "check_run",
    "check_seed",
    "objectives",
]

# Switches that Python would take as true for any non-empty string ("maybe").
BOOLEAN_KEYS = (
    "test",
    "data.download",
    "data.augment",
    "model.optimizer.fused",
    "trainer.keep_freed_memory",
)
SAFE_NAME = re.compile(r"(?!\.+$)[\w.-]+")
# The parts a run builds, by key: the config group that chooses each, and whether null (none)
# is allowed.
PARTS = {
    "data": ("data", False),
    "model": ("model", False),
    "model.net": ("model", False),
    "model.optimizer": ("model/optimizer", False),
    "model.scheduler": ("model/scheduler", True),
    "trainer": ("trainer", False),
    "callbacks": ("callbacks", True),
    "logger": ("logger", True),
}


def check_optimizer(cfg: DictConfig) -> None:
    """Build the optimizer on a dummy parameter, so that a bad ``lr`` or name fails now."""
    lr = cfg.model.optimizer.get("lr")
    if not is_number(lr) or not 0 < lr < math.inf:
        raise ConfigError(
            f"`model.optimizer.lr`={lr!r} is invalid: use a positive number such as 0.001."
        )
    factory = instantiate(cfg.model.optimizer, "model.optimizer")
    probe = [torch.nn.Parameter(torch.zeros(1))]
    try:
        optimizer = factory(params=probe)
    except (TypeError, ValueError) as e:
        raise ConfigError(
            f"Invalid config at `model.optimizer`: {e}. Check model.optimizer.lr and the "
            "other optimizer settings (model/optimizer=adam|sgd)."
        ) from None
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise ConfigError(
            f"`model.optimizer._target_`={cfg.model.optimizer._target_!r} does not build a "
            "torch optimizer: choose one with model/optimizer=adam|sgd."
        )
    if cfg.model.get("scheduler") is not None:  # a schedule that fails at its first step
        scheduler = instantiate(cfg.model.scheduler, "model.scheduler")
        try:
            schedule = scheduler(optimizer=optimizer)
            optimizer.step()  # a no-op without gradients, in the order torch expects
            schedule.step()
        except Exception as e:
            raise ConfigError(
                f"Invalid config at `model.scheduler`: stepping it fails ({type(e).__name__}: "
                f"{e}). Check its settings (for model/scheduler=cosine, T_max >= 1)."
            ) from None


def check_run(cfg: DictConfig) -> None:
    """The run-level settings: every value readable, epochs, seeds, switches, the metric to
    optimise and its direction."""
    try:  # a `???` or a broken ${...} anywhere fails here, with its key, not mid-run
        values = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    except OmegaConfBaseException as e:
        raise from_omegaconf(e) from None
    check_parts(cfg)
    _check_integers(values)
    check_devices(cfg.trainer)
    for key, value, minimum in (
        ("trainer.max_epochs", cfg.trainer.get("max_epochs"), 1),
        ("seeds", cfg.get("seeds", 1), 1),
    ):
        if not is_int(value) or value < minimum:
            raise ConfigError(f"`{key}`={value!r} is invalid: use a positive integer.")
    check_seed(cfg.get("seed"), cfg.get("seeds", 1))
    every = cfg.trainer.get("check_val_every_n_epoch", 1)
    if every is not None and (not is_int(every) or not 1 <= every <= cfg.trainer.max_epochs):
        raise ConfigError(
            f"`trainer.check_val_every_n_epoch`={every!r} is invalid with trainer.max_epochs="
            f"{cfg.trainer.max_epochs}: validation must run at least once (it picks the best "
            "epoch and gives the objective), so use an integer from 1 to max_epochs."
        )
    least = cfg.trainer.get("min_epochs")
    if least is not None and (not is_int(least) or not 0 <= least <= cfg.trainer.max_epochs):
        raise ConfigError(
            f"`trainer.min_epochs`={least!r} is invalid with trainer.max_epochs="
            f"{cfg.trainer.max_epochs}: max_epochs wins, so use an integer from 0 to max_epochs "
            "(or raise max_epochs)."
        )
    sanity = cfg.trainer.get("num_sanity_val_steps")
    if sanity is not None and (not is_int(sanity) or sanity < -1):
        raise ConfigError(
            f"`trainer.num_sanity_val_steps`={sanity!r} is invalid: use the number of "
            "validation batches to try before training (0 for none, -1 for all)."
        )
    patience = OmegaConf.select(cfg, "callbacks.early_stopping.patience", default=None)
    if patience is not None and (not is_int(patience) or patience < 0):
        raise ConfigError(
            f"`callbacks.early_stopping.patience`={patience!r} is invalid: use the number of "
            "validation epochs without improvement to wait before stopping (0 or more)."
        )
    for key in BOOLEAN_KEYS:
        value = OmegaConf.select(cfg, key, default=None)
        if value is not None and not isinstance(value, bool):
            raise ConfigError(f"`{key}`={value!r} is invalid: use true or false.")
    tags = cfg.get("tags")
    if tags is not None and not (
        OmegaConf.is_list(tags) and all(isinstance(t, str | int) for t in tags)
    ):
        raise ConfigError(f"`tags`={tags!r} is invalid: give a list, e.g. tags=[cnn,ablation].")
    check_name(cfg.get("name"))
    if cfg.get("monitor_mode") not in ("min", "max"):
        raise ConfigError(f"`monitor_mode`={cfg.get('monitor_mode')!r} is invalid: use min or max.")
    metrics, directions = objectives(cfg)
    if not metrics or not all(isinstance(m, str) and m for m in metrics):
        raise ConfigError(
            f"`optimized_metric`={cfg.get('optimized_metric')!r} is invalid: name a logged "
            "metric such as val/acc_best, or a list of them (objective=acc_vs_params)."
        )
    if len(directions) != len(metrics) or not all(d in ("min", "max") for d in directions):
        raise ConfigError(
            f"`optimized_direction`={cfg.get('optimized_direction')!r} does not fit "
            f"optimized_metric={metrics}: give min or max for each metric, in the same order."
        )


def check_name(name: Any) -> None:
    """``name`` names the run's (or the study's) directory under paths.log_dir."""
    if not isinstance(name, str) or not SAFE_NAME.fullmatch(name):
        raise ConfigError(
            f"`name`={name!r} is invalid: it names the run's directory under paths.log_dir, "
            "so use letters, digits, '.', '_' or '-' (no '/' and not only dots)."
        )


def check_parts(cfg: DictConfig) -> None:
    """Each part the run builds is a config node (a word or a number there would fail as an
    attribute error deep in the run); the optional ones may be null."""
    for key, (group, optional) in PARTS.items():
        node = OmegaConf.select(cfg, key, default=None)
        if not isinstance(node, DictConfig) and not (optional and node is None):
            raise ConfigError(
                f"`{key}`={node!r} is invalid: it holds the settings of a part the run builds; "
                f"choose one with {group}=<option> (configs/{group}/)"
                + (f", or {key}=null for none." if optional else ".")
            )


def _check_integers(values: Any, key: str = "") -> None:
    """torch and the C libraries under it take 64-bit integers: a larger one would overflow
    deep inside them, with no key in the error."""
    if isinstance(values, dict | list):
        items = values.items() if isinstance(values, dict) else enumerate(values)
        for name, value in items:
            child = (
                f"{key}[{name}]"
                if isinstance(values, list)
                else ".".join(filter(None, (key, str(name))))
            )
            _check_integers(value, child)
    elif is_int(values) and not -(2**63) <= values < 2**63:
        raise ConfigError(f"`{key}`={values} is invalid: it does not fit in 64 bits.")


def check_devices(trainer: DictConfig) -> None:
    """More CPU or GPU devices than the machine has would start a process per device (or wait
    for GPUs that never come)."""
    devices, accelerator = trainer.get("devices"), str(trainer.get("accelerator", "auto"))
    if not is_int(devices) or accelerator not in ("auto", "cpu", "gpu", "cuda"):
        return
    on_gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
    have = torch.cuda.device_count() if on_gpu else cpu_cores()
    if devices > have > 0:  # no GPU at all: the trainer factory says so, with the fix
        raise ConfigError(
            f"`trainer.devices`={devices} is more than this machine has: {have} "
            f"{'GPU(s)' if on_gpu else 'CPU core(s)'}. Use 1, or -1 for all of them."
        )


def objectives(cfg: DictConfig) -> tuple[list[str], list[str]]:
    """``optimized_metric`` and ``optimized_direction`` as lists (one entry per objective)."""

    def as_list(value: Any) -> list[Any]:
        return list(value) if OmegaConf.is_list(value) or isinstance(value, list) else [value]

    return as_list(cfg.get("optimized_metric")), as_list(cfg.get("optimized_direction"))


def check_seed(seed: Any, count: Any = 1) -> None:
    """``seed`` (null: draw one) and the ``count`` seeds from it must fit torch's range."""
    if seed is not None and (not is_int(seed) or not 0 <= seed <= 2**32 - count):
        raise ConfigError(
            f"`seed`={seed!r} is invalid: use an integer from 0 to 2**32-{count}"
            + (f" (seeds={count} runs seed..seed+{count - 1})" if count > 1 else "")
            + ", or null to draw one (it is recorded in metrics.json)."
        )


def check_logged(cfg: DictConfig, model: Any) -> None:
    """``monitor``, ``optimized_metric`` and the callbacks' monitors must be metrics the run
    logs (known before training for models that list them), or the run would fail later."""
    if getattr(model, "LOGGED_METRICS", None) is None:
        return
    logged = [*model.LOGGED_METRICS, PARAMS, *([LATENCY] if cfg.get("measure_latency") else [])]
    callbacks = cfg.get("callbacks") or {}
    watched = [
        (f"callbacks.{name}.monitor", node.get("monitor"))
        for name, node in callbacks.items()
        if isinstance(node, DictConfig)
    ]
    for key, value in [
        ("monitor", cfg.get("monitor")),
        *(("optimized_metric", metric) for metric in objectives(cfg)[0]),
        *watched,
    ]:
        if value is not None and value not in logged:
            raise ConfigError(
                f"`{key}`={value!r} is not a metric this run logs; it logs "
                f"{', '.join(logged)}. Set {key} to one of them (objective=val_acc|val_loss "
                "sets monitor and optimized_metric together; model/latency_ms needs "
                "measure_latency=true, as objective=acc_vs_latency sets)."
            )
