"""Turning config nodes into objects, with errors that name the config key.

Everything a run needs is instantiated before training starts, so a bad value fails in
seconds with one paragraph rather than after an epoch with a traceback.
"""

from __future__ import annotations

import fnmatch
import os
from typing import Any

import hydra
import torch
from hydra.errors import InstantiationException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue

from sweeplab.errors import ConfigError, SweeplabError

# Targets that configs may instantiate (Hydra 1.4's execution whitelist); users add the
# module prefixes of their own architectures with SWEEPLAB_TRUSTED=pkg[,other.pkg].
BUILTIN_TARGETS = ("sweeplab.*", "torch.optim.*", "optuna.pruners.*", "pytorch_lightning.*")
TRUSTED_ENV = "SWEEPLAB_TRUSTED"


def trusted_targets() -> list[str]:
    """sweeplab's own targets and those under the prefixes named in ``SWEEPLAB_TRUSTED``."""
    prefixes = [p.strip() for p in os.environ.get(TRUSTED_ENV, "").split(",") if p.strip()]
    return [*BUILTIN_TARGETS, *(p if p.endswith("*") else f"{p}.*" for p in prefixes)]


def instantiate(node: Any, key: str, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate(node)`` with errors that name the failing config key.

    Nested ``_target_`` nodes are built first, one by one, so that a bad value in
    ``model.net`` is reported as ``model.net`` rather than as ``model``.
    """
    if isinstance(node, DictConfig):
        for name, child in node.items():
            if isinstance(child, DictConfig) and "_target_" in child and name not in kwargs:
                kwargs[str(name)] = instantiate(child, f"{key}.{name}")
    target = node.get("_target_") if isinstance(node, DictConfig) else None
    allowed = trusted_targets()
    if isinstance(target, str) and not any(fnmatch.fnmatch(target, p) for p in allowed):
        raise ConfigError(
            f"`{key}._target_`={target!r} is not trusted: sweeplab instantiates only "
            f"{', '.join(allowed)}. If it is your own code, name its package in the "
            f"environment variable {TRUSTED_ENV} (comma-separated module prefixes), e.g. "
            f"{TRUSTED_ENV}={target.split('.')[0]} python train.py ..."
        )
    try:
        return hydra.utils.instantiate(node, _execution_whitelist_=allowed, **kwargs)
    except SweeplabError:
        raise
    except (InstantiationException, MissingMandatoryValue, ValueError, TypeError) as e:
        raise ConfigError(
            f"Invalid config at `{key}` (target {target}): {e} Fix the value in configs/ or "
            f"override it on the command line, e.g. {key}.<name>=<value>."
        ) from None


def instantiate_group(group: DictConfig | None, key: str) -> list[Any]:
    """Instantiate every entry of a group like ``callbacks`` or ``logger``; null entries
    are switched off, so ``callbacks.lr_monitor=null`` drops one."""
    if not group:
        return []
    return [
        instantiate(node, f"{key}.{name}")
        for name, node in group.items()
        if node is not None and "_target_" in node
    ]


def check_optimizer(cfg: DictConfig) -> None:
    """Build the optimizer on a dummy parameter, so that a bad ``lr`` or name fails now."""
    lr = cfg.model.optimizer.get("lr")
    if not _is_number(lr) or lr <= 0:
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


def check_run(cfg: DictConfig) -> None:
    """The run-level settings: epochs, seeds, the metric to optimise and its direction."""
    for key, value, minimum in (
        ("trainer.max_epochs", cfg.trainer.get("max_epochs"), 1),
        ("seeds", cfg.get("seeds", 1), 1),
    ):
        if not _is_int(value) or value < minimum:
            raise ConfigError(f"`{key}`={value!r} is invalid: use a positive integer.")
    seed = cfg.get("seed")
    if seed is not None and (not _is_int(seed) or not 0 <= seed < 2**32):
        raise ConfigError(
            f"`seed`={seed!r} is invalid: use an integer from 0 to 2**32-1, or null to draw one "
            "(it is recorded in metrics.json)."
        )
    metric = cfg.get("optimized_metric")
    if not isinstance(metric, str) or not metric:
        raise ConfigError(
            f"`optimized_metric`={metric!r} is invalid: name a logged metric such as "
            "val/acc_best or val/loss_best."
        )
    if cfg.get("monitor_mode") not in ("min", "max"):
        raise ConfigError(f"`monitor_mode`={cfg.get('monitor_mode')!r} is invalid: use min or max.")


def check_logged(cfg: DictConfig, model: Any) -> None:
    """``optimized_metric`` and ``monitor`` must be metrics the model logs (known before
    training for models that list them), or the run would fail after its last epoch."""
    logged = getattr(model, "LOGGED_METRICS", None)
    if logged is None:
        return
    for key in ("optimized_metric", "monitor"):
        value = cfg.get(key)
        if value is not None and value not in logged:
            raise ConfigError(
                f"`{key}`={value!r} is not a metric this run logs; it logs "
                f"{', '.join(logged)}. Set {key} to one of them (objective=val_acc|val_loss "
                "sets monitor and optimized_metric together)."
            )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def to_plain(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config as plain Python containers."""
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
