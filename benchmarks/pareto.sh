#!/usr/bin/env bash
# Accuracy against model size on the reference CNN space, for BENCHMARKS.md: an acc_vs_params
# sweep (NSGA-II) and a single-objective val_acc sweep with the same budget, then the Pareto
# set by size with what each halving of the parameter count costs in validation accuracy.
# Budget from the environment: TRIALS=16 EPOCHS=2 SUBSET=10000 LOGS=logs, and
# OVERRIDES="key=value ..." for both sweeps.
# bash benchmarks/pareto.sh ../shared/fashion-mnist
set -euo pipefail
DATA=${1:?usage: bash benchmarks/pareto.sh <fashion-mnist dir>}
cd "$(dirname "$0")/.."
LOGS=${LOGS:-logs}
COMMON=(-m hparams_search=cnn_optuna "data.data_dir=$DATA" "paths.log_dir=$LOGS" logger=csv
  callbacks.rich_progress_bar=null "hydra.sweeper.n_trials=${TRIALS:-16}"
  "trainer.max_epochs=${EPOCHS:-2}" "data.train_subset=${SUBSET:-10000}" ${OVERRIDES:-})
mkdir -p "$LOGS"

start=$SECONDS
python train.py "${COMMON[@]}" name=bench_pareto objective=acc_vs_params \
  hydra/sweeper/sampler=nsgaii hydra.sweeper.sampler.seed=0 > "$LOGS/bench_pareto.log" 2>&1
echo "acc_vs_params sweep: $((SECONDS - start)) s"
start=$SECONDS
python train.py "${COMMON[@]}" name=bench_single objective=val_acc \
  hydra.sweeper.sampler.seed=0 > "$LOGS/bench_single.log" 2>&1
echo "val_acc sweep: $((SECONDS - start)) s"

python - "$LOGS/sweeps" <<'PY'
import json
import math
import sys
from pathlib import Path

from omegaconf import OmegaConf

sweeps = Path(sys.argv[1])
front = OmegaConf.load(sweeps / "bench_pareto" / "optimization_results.yaml").solutions
single = OmegaConf.load(sweeps / "bench_single" / "optimization_results.yaml")
points = sorted(((int(s["values"][1]), float(s["values"][0]), s) for s in front), reverse=True)
top_params, top_acc = points[0][0], max(acc for _, acc, _ in points)
print("| trial | parameters | val acc (best) | halvings vs largest | acc lost per halving |")
print("| --- | --- | --- | --- | --- |")
for params, acc, s in points:
    halvings = math.log2(top_params / params)
    lost = f"{(top_acc - acc) * 100 / halvings:.2f} pts" if halvings > 0 else "-"
    print(f"| {s.number} | {params:,} | {acc:.4f} | {halvings:.1f} | {lost} |")
record = sweeps / "bench_single" / f"trial_{single.best_trial}" / "metrics.json"
params = json.loads(record.read_text())["metrics"]["model/params"] if record.is_file() else None
shown = f", {params:,.0f} parameters" if params is not None else ""
print(
    f"single-objective winner (val_acc): trial {single.best_trial}, val acc "
    f"{single.best_value:.4f}{shown}"
)
PY
