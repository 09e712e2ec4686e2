#!/usr/bin/env bash
# The reference comparison (Keras Tuner study on Fashion-MNIST) on CPU, with a budget that fits
# a 2-core machine: sweeps, then the best configuration and the baseline retrained over seeds.
# Usage: bash benchmarks/reference_study.sh [data dir]   (results: logs/, summary: stdout)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-${FASHION_MNIST_DIR:-../shared/fashion-mnist}}
COMMON=(data.data_dir="$DATA" logger=csv callbacks.rich_progress_bar=null)
SEEDS=3      # MLP retraining
CNN_SEEDS=2  # CNN retraining costs 10x more per epoch on CPU
stamp() { date +%s; }

run_timed() {  # label, then the train.py arguments
  local label=$1; shift
  local t0; t0=$(stamp)
  python train.py "$@" "${COMMON[@]}" > "logs/bench_${label}.log" 2>&1
  echo "$label: $(( $(stamp) - t0 )) s"
}
mkdir -p logs

# 1. Sweeps (TPE, Hyperband pruning, seed 0), objective: best validation loss, as the reference.
run_timed mlp_sweep -m hparams_search=mlp_optuna name=bench_mlp hydra.sweeper.n_trials=15 \
  trainer.max_epochs=5 hydra/sweeper/pruner=hyperband hydra.sweeper.sampler.seed=0
run_timed cnn_sweep -m hparams_search=cnn_optuna name=bench_cnn hydra.sweeper.n_trials=12 \
  trainer.max_epochs=4 data.train_subset=20000 hydra/sweeper/pruner=hyperband \
  hydra.sweeper.sampler.seed=0

# 2. Retrain the winners on all 57,000 training images, and the baselines, over seeds.
run_timed mlp_best best_of=logs/sweeps/bench_mlp trainer.max_epochs=20 seeds=$SEEDS
run_timed mlp_baseline experiment=mlp_baseline seeds=$SEEDS
run_timed cnn_best best_of=logs/sweeps/bench_cnn trainer.max_epochs=15 model/scheduler=cosine \
  seeds=$CNN_SEEDS
run_timed cnn_baseline experiment=cnn_baseline seeds=$CNN_SEEDS

latest() { ls -d "logs/runs/$1"/*/ | tail -n 1; }
sweeplab compare "$(latest mlp_baseline)" "$(latest bench_mlp_best)" \
  "$(latest cnn_baseline)" "$(latest bench_cnn_best)"
for study in bench_mlp bench_cnn; do
  echo "$study: $(sweeplab best logs/sweeps/$study 2>&1 | tr '\n' ' ')"
  grep -E "epochs_total|complete:|pruned:|fail:" "logs/sweeps/$study/optimization_results.yaml" | tr '\n' ' '; echo
done
