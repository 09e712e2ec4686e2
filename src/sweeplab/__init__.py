"""sweeplab: hyperparameter optimisation of Lightning models with Hydra, Optuna and W&B.

The public interface is what configs and users name: the ``_target_``s of ``configs/`` (each
in its module's ``__all__``), the entry points ``train.py``, ``eval.py`` and the ``sweeplab``
command, and Hydra's ``hydra/sweeper=sweeplab``. Importing the package imports nothing else.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
