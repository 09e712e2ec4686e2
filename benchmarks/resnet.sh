#!/usr/bin/env bash
# The ResNet past 94% and the reference CNN space with longer training, for BENCHMARKS.md:
#   1. sweep the extended ResNet space (resnet_optuna) on a stratified subset;
#   2. retrain its best configuration on all 57,000 training images over 3 seeds and test;
#   3. retrain the reference CNN space's best configuration (a finished cnn_optuna sweep,
#      e.g. from benchmarks/reference_study.sh) with a cosine schedule and augmentation.
# Budgets come from the environment (defaults fit one GPU in about 40 minutes; on a 2-core CPU
# a width-32 ResNet epoch of all the images takes about 35 s, see BENCHMARKS.md):
#   TRIALS=20 SWEEP_EPOCHS=8 SUBSET=20000 EPOCHS=30 SEEDS=3 TRAINER=default LOGS=logs
# and OVERRIDES="key=value ..." for every run (say data.batch_size=256).
# bash benchmarks/resnet.sh ../shared/fashion-mnist [cnn sweep dir]
set -euo pipefail
DATA=${1:?usage: bash benchmarks/resnet.sh <fashion-mnist dir> [cnn sweep dir]}
LOGS=${LOGS:-logs}
CNN_SWEEP=${2:-$LOGS/sweeps/bench_cnn}
cd "$(dirname "$0")/.."
COMMON=("data.data_dir=$DATA" "paths.log_dir=$LOGS" "trainer=${TRAINER:-default}" logger=csv
  callbacks.rich_progress_bar=null ${OVERRIDES:-})
EPOCHS=${EPOCHS:-30}
SEEDS=${SEEDS:-3}
mkdir -p "$LOGS"

run_timed() {  # label, then the train.py arguments
  local label=$1
  shift
  local start=$SECONDS
  python train.py "$@" "${COMMON[@]}" > "$LOGS/bench_${label}.log" 2>&1
  echo "$label: $((SECONDS - start)) s"
}
latest() { ls -d "$LOGS/runs/$1"/*/ | tail -n 1; }

run_timed resnet_sweep -m hparams_search=resnet_optuna name=bench_resnet \
  "hydra.sweeper.n_trials=${TRIALS:-20}" "trainer.max_epochs=${SWEEP_EPOCHS:-8}" \
  "data.train_subset=${SUBSET:-20000}" hydra/sweeper/pruner=hyperband hydra.sweeper.sampler.seed=0
echo "bench_resnet: $(sweeplab best "$LOGS/sweeps/bench_resnet" 2>&1 | tr '\n' ' ')"
run_timed resnet_best best_of="$LOGS/sweeps/bench_resnet" data.train_subset=null \
  "trainer.max_epochs=$EPOCHS" "seeds=$SEEDS"
runs=("$(latest bench_resnet_best)")

if [ -f "$CNN_SWEEP/optimization_results.yaml" ]; then
  # The reference space's winner, trained longer: cosine schedule and augmentation as fixed
  # overrides (not part of the reference's training).
  run_timed cnn_long best_of="$CNN_SWEEP" data.train_subset=null name=bench_cnn_long \
    "trainer.max_epochs=$EPOCHS" model/scheduler=cosine data.augment=true "seeds=$SEEDS"
  runs+=("$(latest bench_cnn_long)")
else
  echo "No finished CNN sweep in $CNN_SWEEP: skipping the reference space's longer retraining."
fi
sweeplab compare "${runs[@]}"
