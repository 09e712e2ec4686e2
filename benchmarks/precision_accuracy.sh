#!/usr/bin/env bash
# Does the fast path keep accuracy? Both baselines, 10 epochs, 2 seeds, in float32
# (trainer.precision=32-true) and in the default path (precision=auto: bf16 mixed precision
# where the CPU runs it natively, channels-last convolutions), then one comparison table.
# bash benchmarks/precision_accuracy.sh ../shared/fashion-mnist
set -euo pipefail
DATA=${1:?usage: bash benchmarks/precision_accuracy.sh <fashion-mnist dir>}
cd "$(dirname "$0")/.."
LOGS=$(mktemp -d)
trap 'rm -rf "$LOGS"' EXIT

for experiment in cnn_baseline mlp_baseline; do
  for precision in 32-true auto; do
    python train.py "experiment=$experiment" seeds=2 "trainer.precision=$precision" \
      "name=${experiment}_${precision}" logger=none callbacks.rich_progress_bar=null \
      "paths.log_dir=$LOGS" "data.data_dir=$DATA" > "$LOGS/${experiment}_${precision}.out" 2>&1
  done
done
sweeplab compare "$LOGS"/runs/*/*
