"""Evaluate a trained checkpoint on the Fashion-MNIST test split.

python eval.py ckpt_path=logs/runs/cnn_baseline/<time>/checkpoints/best.ckpt
"""

import os
from pathlib import Path

import hydra
from omegaconf import DictConfig

os.environ.setdefault("SWEEPLAB_ROOT", str(Path(__file__).resolve().parent))

from sweeplab import evaluate  # noqa: E402
from sweeplab.config import trusted_targets  # noqa: E402


@hydra.main(config_path="configs", config_name="eval", execution_whitelist=trusted_targets())
def main(cfg: DictConfig) -> None:
    evaluate.main(cfg)


if __name__ == "__main__":
    main()
