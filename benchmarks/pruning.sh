#!/usr/bin/env bash
# What pruning saves: the same 12-trial CNN sweep (TPE, seed 0) without a pruner, with the
# median pruner and with Hyperband, on a 5,000-image training subset for 4 epochs per trial.
# Usage: bash benchmarks/pruning.sh [data dir]
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-${FASHION_MNIST_DIR:-../shared/fashion-mnist}}
mkdir -p logs
for pruner in none median hyperband; do
  t0=$(date +%s)
  python train.py -m hparams_search=cnn_optuna name="prune_${pruner}" hydra/sweeper/pruner=$pruner \
    hydra.sweeper.n_trials=12 trainer.max_epochs=4 data.train_subset=5000 \
    hydra.sweeper.sampler.seed=0 data.data_dir="$DATA" logger=csv \
    callbacks.rich_progress_bar=null > "logs/bench_prune_${pruner}.log" 2>&1
  results=logs/sweeps/prune_${pruner}/optimization_results.yaml
  echo "$pruner: $(( $(date +%s) - t0 )) s, $(grep -E 'epochs_total|complete:|pruned:|best_value' "$results" | tr -s ' \n' ' ')"
done
