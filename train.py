"""Train one model, or sweep with -m.

python train.py experiment=cnn_baseline
python train.py -m hparams_search=cnn_optuna
python train.py best_of=logs/sweeps/cnn_optuna trainer.max_epochs=50 seeds=3
"""

import os
import sys
from pathlib import Path

from sweeplab.process import imports_without_gc, plots_off_screen

# Paths in configs/ are relative to the project root, wherever the command is run from.
os.environ.setdefault("SWEEPLAB_ROOT", str(Path(__file__).resolve().parent))

plots_off_screen()
with imports_without_gc():
    from omegaconf import DictConfig

    from sweeplab import train
    from sweeplab.compat import hydra as hydra_compat
    from sweeplab.errors import SweeplabError, exit_with
    from sweeplab.sweep.best import expand_best_of
    from sweeplab.sweep.recorded import WANDB_SWEEP_FIX, check_plain
    from sweeplab.trust import trusted_targets

try:
    TRUSTED = trusted_targets()
except SweeplabError as error:
    exit_with(error)


@hydra_compat.main(config_path="configs", config_name="train", trusted=TRUSTED)
def main(cfg: DictConfig) -> float:
    return train.main(cfg)


if __name__ == "__main__":
    try:
        if os.environ.get("WANDB_SWEEP_ID"):  # arguments written by whoever edits the sweep
            check_plain(sys.argv[1:], "the W&B sweep's arguments", WANDB_SWEEP_FIX)
        sys.argv[1:] = expand_best_of(sys.argv[1:])
    except SweeplabError as e:
        exit_with(e)
    main()
