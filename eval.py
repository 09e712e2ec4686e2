"""Evaluate a trained checkpoint on the Fashion-MNIST test split.

python eval.py ckpt_path=logs/runs/cnn_baseline/<time>/checkpoints/best.ckpt
"""

import os
from pathlib import Path

from sweeplab.startup import imports_without_gc

os.environ.setdefault("SWEEPLAB_ROOT", str(Path(__file__).resolve().parent))

with imports_without_gc():
    import hydra
    from omegaconf import DictConfig

    from sweeplab import evaluate
    from sweeplab.config import trusted_targets
    from sweeplab.errors import SweeplabError, exit_with

try:
    TRUSTED = trusted_targets()
except SweeplabError as error:
    exit_with(error)


@hydra.main(config_path="configs", config_name="eval", execution_whitelist=TRUSTED)
def main(cfg: DictConfig) -> None:
    evaluate.main(cfg)


if __name__ == "__main__":
    main()
