"""Optuna sweeps: the Hydra plugin (``sweeper``) and the two programs it runs (``roles``), the
trial contract (``context``), settings, search spaces, the worker loop, pruning, study reads
and reports, and the best-configuration tools. Importing the package imports nothing else:
Hydra loads ``sweeper`` at every start-up."""

__all__: list[str] = []
