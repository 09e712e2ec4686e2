"""sweeplab: hyperparameter optimisation of Lightning models with Hydra, Optuna and W&B."""

__version__ = "0.1.0"
