#!/usr/bin/env bash
# GPU figures for BENCHMARKS.md in one run on one GPU (under 8 minutes):
#   1. baseline CNN epoch times at batch 32 and 256, fp32 and mixed precision, against a plain
#      float32 PyTorch loop on the same GPU;
#   2. a 20-trial CNN sweep (2 epochs per trial, batch 256): trials per hour with 1 worker and
#      with 4 workers sharing the GPU, and the GPU's mean utilisation during each.
# bash benchmarks/gpu.sh ../shared/fashion-mnist
set -euo pipefail
DATA=${1:?usage: bash benchmarks/gpu.sh <fashion-mnist dir>}
cd "$(dirname "$0")/.."

python - <<'PY'
import sys

import torch

if not torch.cuda.is_available():
    sys.exit(
        f"benchmarks/gpu.sh needs a CUDA GPU, and torch {torch.__version__} sees none here "
        "(torch.cuda.is_available() is False). Run it on a GPU machine with a CUDA build of torch."
    )
print(f"GPU: {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
PY

LOGS=$(mktemp -d)
trap 'rm -rf "$LOGS"; kill "$SAMPLER" 2>/dev/null || true' EXIT
export WANDB_MODE=offline

echo "## Epoch times (sweeplab / plain fp32 loop on the GPU)"
python benchmarks/epoch_time.py --data-dir "$DATA" --device cuda --epochs 3 \
  --experiments cnn_baseline --batch-sizes 32 256 --overrides trainer=gpu | grep ratio
python benchmarks/epoch_time.py --data-dir "$DATA" --device cuda --epochs 3 \
  --experiments cnn_baseline --batch-sizes 32 256 \
  --overrides trainer=gpu trainer.precision=32-true | grep ratio | sed 's/^/fp32: /'

sweep() {  # name, extra overrides...
  local name=$1
  shift
  nvidia-smi --query-gpu=utilization.gpu --format=csv,noheader,nounits -lms 500 \
    > "$LOGS/$name.util" &
  SAMPLER=$!
  local start=$SECONDS
  python train.py -m hparams_search=cnn_optuna trainer=gpu "name=$name" \
    "paths.log_dir=$LOGS" "data.data_dir=$DATA" data.batch_size=256 trainer.max_epochs=2 \
    hydra.sweeper.n_trials=20 logger=none callbacks.rich_progress_bar=null "$@" \
    > "$LOGS/$name.out" 2>&1
  local wall=$((SECONDS - start))
  kill "$SAMPLER"
  local util
  util=$(awk '{ s += $1; n++ } END { if (n) printf "%.0f", s / n }' "$LOGS/$name.util")
  echo "| $name | $wall s | $((20 * 3600 / (wall > 0 ? wall : 1))) trials/hour | GPU ${util}% |"
}

echo "## 20-trial CNN sweep on one GPU"
sweep one_worker
sweep four_workers hydra.sweeper.workers=4 hydra.sweeper.workers_per_gpu=4
