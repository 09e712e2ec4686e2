"""One small module per dependency for what sweeplab needs beyond its public, released API:
``compat.hydra`` (Hydra 1.4 pre-release features) and ``compat.optuna`` (one private detail).
tests/test_compat.py fails with a clear message when an installed version changes them."""

__all__: list[str] = []
