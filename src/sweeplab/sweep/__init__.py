"""Optuna sweeps: the sweeper extension, search spaces, pruning, reports and best-config tools."""
