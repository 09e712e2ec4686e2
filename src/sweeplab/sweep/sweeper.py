"""sweeplab's Optuna sweeper, on Hydra's public ``Sweeper`` plugin API and Optuna's public API.

Over the stock Hydra Optuna sweeper it adds: several workers on one study (local processes,
machines sharing a PostgreSQL or journal storage, SLURM jobs), ``n_trials`` as the study's
total, dead workers detected by Optuna's heartbeat and their trials retried, pruning
(``hydra/sweeper/pruner=...``), per-layer search spaces (``hydra.sweeper.layers``), failed
trials that stop the sweep only past ``max_failure_rate``, progress lines and reports.

Hydra imports every plugin it discovers when any Hydra app starts, so this module imports
nothing heavy: Optuna, torch, Lightning, W&B and matplotlib load inside :meth:`sweep`.
"""

from __future__ import annotations

from typing import Any

from hydra.core.plugins import Plugins
from hydra.plugins.launcher import Launcher
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

__all__ = ["SweeplabOptunaSweeper"]


class SweeplabOptunaSweeper(Sweeper):
    """The Hydra plugin: checks the settings (``hydra.sweeper.*``), then runs the sweep
    command, or, in a process the command started, one of its workers."""

    def __init__(self, **settings: Any) -> None:
        self.settings = settings
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.launcher: Launcher | None = None

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            config=config, hydra_context=hydra_context, task_function=task_function
        )

    def sweep(self, arguments: list[str]) -> None:
        from sweeplab.errors import USER_ERRORS, exit_with, user_error
        from sweeplab.sweep import roles, workers
        from sweeplab.sweep.settings import SweepSettings

        assert self.config and self.hydra_context and self.launcher, "Hydra calls setup first"
        config, launcher = self.config, self.launcher
        loader = self.hydra_context.config_loader
        worker_index = workers.worker_index()
        try:
            sweep = roles.open_sweep(
                SweepSettings.from_kwargs(self.settings),
                config,
                arguments,
                lambda overrides: loader.load_sweep_config(config, overrides),
                lambda key: bool(loader.get_group_options(key)),
                check_values=worker_index is None,  # once per sweep, by the command
            )
            role = roles.run_command if worker_index is None else roles.run_worker
            role(sweep, lambda batch, first: launcher.launch(batch, initial_job_idx=first))
        except USER_ERRORS as e:  # one paragraph for the user, not Hydra's traceback
            exit_with(user_error(e))
