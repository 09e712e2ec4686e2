"""Train one model, or sweep with -m.

python train.py experiment=cnn_baseline
python train.py -m hparams_search=cnn_optuna
python train.py best_of=logs/sweeps/cnn_optuna trainer.max_epochs=50 seeds=3

The same command as the installed `sweeplab train`, with this checkout's configs/ and logs/.
"""

import sys
from pathlib import Path

from sweeplab import app

if __name__ == "__main__":
    app.train(sys.argv[1:], checkout=Path(__file__).resolve().parent)
