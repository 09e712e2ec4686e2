"""sweeplab: hyperparameter optimisation of Lightning models with Hydra, Optuna and W&B.

The public interface is what configs and users name: the ``_target_``s of ``configs/`` (each
in its module's ``__all__``), the commands (``sweeplab train|eval|init|best|...``, and
``train.py``, ``eval.py`` in a checkout), Hydra's ``hydra/sweeper=sweeplab``, and for
notebooks and scripts:

- ``run(overrides=[...])``: train once, as ``sweeplab train`` would; returns the run's record
- ``run_sweep(overrides=[...])``: ``sweeplab train -m ...``, results in ``logs/sweeps/<name>``
  (not ``sweep``: that is the subpackage ``sweeplab.sweep``)
- ``load_best(sweep_dir_or_storage_url)``: the best trial (or the Pareto set), as overrides

Importing the package imports nothing else: Hydra imports sweeplab's sweeper plugin (and so
this package) at its start-up, so the functions above import their modules when called.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["__version__", "load_best", "run", "run_sweep"]

__version__ = "0.1.0"

# name -> the module that defines it, imported on first use
_LAZY = {"run": "sweeplab.app", "run_sweep": "sweeplab.app", "load_best": "sweeplab.sweep.best"}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'sweeplab' has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name]), name)
