"""Evaluate a trained checkpoint on the Fashion-MNIST test split.

python eval.py ckpt_path=logs/runs/cnn_baseline/<time>/checkpoints/best.ckpt
"""

import os
from pathlib import Path

from sweeplab.process import imports_without_gc, plots_off_screen

os.environ.setdefault("SWEEPLAB_ROOT", str(Path(__file__).resolve().parent))

plots_off_screen()
with imports_without_gc():
    from omegaconf import DictConfig

    from sweeplab import evaluate
    from sweeplab.compat import hydra as hydra_compat
    from sweeplab.errors import SweeplabError, exit_with
    from sweeplab.trust import trusted_targets

try:
    TRUSTED = trusted_targets()
except SweeplabError as error:
    exit_with(error)


@hydra_compat.main(config_path="configs", config_name="eval", trusted=TRUSTED)
def main(cfg: DictConfig) -> None:
    evaluate.main(cfg)


if __name__ == "__main__":
    main()
