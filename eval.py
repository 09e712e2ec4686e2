"""Evaluate a trained checkpoint on the Fashion-MNIST test split.

python eval.py ckpt_path=logs/runs/cnn_baseline/<time>/checkpoints/best.ckpt

The same command as the installed `sweeplab eval`, with this checkout's configs/ and logs/.
"""

import sys
from pathlib import Path

from sweeplab import app

if __name__ == "__main__":
    app.evaluate(sys.argv[1:], checkout=Path(__file__).resolve().parent)
