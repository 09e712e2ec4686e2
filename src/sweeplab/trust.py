"""What a config may turn into a Python object: the names meant for configs, one by one, and
the packages a user trusts for their own code (``SWEEPLAB_TRUSTED``, to which the entry points
add what the user's ``configs/sweeplab.yaml`` declares, so that workers inherit it).

Never a whole package of sweeplab's or of a library's: a config that may name anything under
``sweeplab.*`` may name a function that starts a process. The names are sweeplab's own config
targets and the classes of the families a config chooses from (torch's optimizers and LR
schedules, Lightning's callbacks, loggers and profilers; Optuna's samplers and pruners for the
sweeper's own groups), listed from the installed libraries, so that a new optimizer is there
without a change here.
"""

from __future__ import annotations

import fnmatch
import functools
import importlib
import os
import re

from sweeplab.errors import ConfigError

__all__ = [
    "SWEEPLAB_TARGETS",
    "TRUSTED_ENV",
    "check_prefix",
    "check_trusted",
    "is_trusted",
    "family",
    "trust_packages",
    "trusted_targets",
]

# sweeplab's names that configs/ instantiate (each is in its module's __all__).
SWEEPLAB_TARGETS = (
    "sweeplab.data.fashion_mnist.FashionMNISTDataModule",
    "sweeplab.models.classifier.Classifier",
    "sweeplab.models.cnn.CNN",
    "sweeplab.models.mlp.MLP",
    "sweeplab.models.resnet.ResNet",
    "sweeplab.outputs.WritableOutputs",
    "sweeplab.progress_bar.ThrottledRichProgressBar",
    "sweeplab.sweep.sweeper.SweeplabOptunaSweeper",
    "sweeplab.tracking.wandb_logger",
    "sweeplab.trainers.trainer",
)
# The families a training config chooses from: (module a config names, base class).
TRAINING_FAMILIES = (
    ("torch.optim", "torch.optim.Optimizer"),
    ("torch.optim.lr_scheduler", "torch.optim.lr_scheduler.LRScheduler"),
    ("pytorch_lightning.callbacks", "pytorch_lightning.callbacks.Callback"),
    ("pytorch_lightning.loggers", "pytorch_lightning.loggers.Logger"),
    ("pytorch_lightning.profilers", "pytorch_lightning.profilers.Profiler"),
)
TRUSTED_ENV = "SWEEPLAB_TRUSTED"
MODULE_PREFIX = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")
MEANT = (
    "sweeplab instantiates only the names meant for configs: its models, data module, "
    "trainer, logger and progress bar, torch's optimizers and LR schedules, Lightning's "
    "callbacks, loggers and profilers (sweeplab.trust lists them), and the packages named in "
    f"{TRUSTED_ENV} or in your configs/sweeplab.yaml"
)


@functools.cache
def family(module_name: str, base_path: str) -> tuple[str, ...]:
    """``module.Name`` for every class that ``module`` exports and that derives from the
    class at ``base_path``."""
    module = importlib.import_module(module_name)
    base_module, _, base_name = base_path.rpartition(".")
    base = getattr(importlib.import_module(base_module), base_name)
    exported = getattr(module, "__all__", None) or [n for n in dir(module) if n[:1].isupper()]
    return tuple(
        f"{module_name}.{name}"
        for name in exported
        if isinstance(getattr(module, name, None), type) and issubclass(getattr(module, name), base)
    )


def trusted_targets() -> list[str]:
    """Every name a training config may instantiate, then ``pkg.*`` for each package named
    in ``SWEEPLAB_TRUSTED``."""
    prefixes = _trusted_packages()
    for prefix in prefixes:
        check_prefix(prefix, TRUSTED_ENV)
    families = [name for module, base in TRAINING_FAMILIES for name in family(module, base)]
    return [*SWEEPLAB_TARGETS, *families, *(f"{p}.*" for p in prefixes)]


def check_prefix(prefix: str, where: str) -> None:
    """Refuse ``prefix``, read from ``where``, unless it is a dotted module name."""
    if not MODULE_PREFIX.fullmatch(prefix):
        raise ConfigError(
            f"{where} holds {prefix!r}, which is not a module prefix: give dotted Python module "
            f"names, e.g. {TRUSTED_ENV}=myarch,lab.models or `trusted: [myarch, lab.models]` in "
            "configs/sweeplab.yaml (each trusts that module and everything under it)."
        )


def trust_packages(prefixes: tuple[str, ...] | list[str]) -> None:
    """Add ``prefixes`` to ``SWEEPLAB_TRUSTED`` in this process's environment, where every
    check in it and in the workers it starts reads them."""
    known = _trusted_packages()
    added = [p for p in prefixes if p not in known]
    if added:
        os.environ[TRUSTED_ENV] = ",".join([*known, *added])


def _trusted_packages() -> list[str]:
    return [p.strip() for p in os.environ.get(TRUSTED_ENV, "").split(",") if p.strip()]


def is_trusted(target: str, allowed: list[str]) -> bool:
    """Whether the dotted name ``target`` matches one of ``allowed``."""
    return any(fnmatch.fnmatch(target, pattern) for pattern in allowed)


def check_trusted(target: str, key: str, allowed: list[str]) -> None:
    """Refuse the dotted name ``target``, read from config ``key`` (a ``_target_`` or any other
    name a config turns into a Python object), unless it matches one of ``allowed``."""
    if not is_trusted(target, allowed):
        raise ConfigError(
            f"`{key}`={target!r} is not trusted: {MEANT}. If it is your own code, name its "
            f"package once in your repository's configs/sweeplab.yaml (`trusted: "
            f"[{target.split('.')[0]}]`), or in the environment variable {TRUSTED_ENV} "
            f"(comma-separated module prefixes), e.g. {TRUSTED_ENV}={target.split('.')[0]} "
            "python train.py ..."
        )
