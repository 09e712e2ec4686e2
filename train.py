"""Train one model, or sweep with -m.

python train.py experiment=cnn_baseline
python train.py -m hparams_search=cnn_optuna
"""

import os
from pathlib import Path

import hydra
from omegaconf import DictConfig

# Paths in configs/ are relative to the project root, wherever the command is run from.
os.environ.setdefault("SWEEPLAB_ROOT", str(Path(__file__).resolve().parent))

from sweeplab import train  # noqa: E402
from sweeplab.config import TRUSTED_TARGETS  # noqa: E402


@hydra.main(config_path="configs", config_name="train", execution_whitelist=TRUSTED_TARGETS)
def main(cfg: DictConfig) -> float:
    return train.main(cfg)


if __name__ == "__main__":
    main()
