#!/usr/bin/env bash
# One study across architectures against three single-architecture studies with the same
# budget (trials x epochs), seeds and data, on this machine's CPU; then each side's best
# configuration retrained by best_of and tested. Usage: bash benchmarks/arch_study.sh [data dir]
# Budget (small, for a 2-core machine): 12 trials x 2 epochs on a 5,000-image training subset.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-${FASHION_MNIST_DIR:-../shared/fashion-mnist}}
LOGS=${ARCH_BENCH_LOGS:-logs/bench_arch}
COMMON=(data.data_dir="$DATA" data.train_subset=5000 trainer.max_epochs=2 logger=none
  callbacks.rich_progress_bar=null objective=val_loss paths.log_dir="$LOGS")
SWEEP=(hydra.sweeper.sampler.seed=0 hydra.sweeper.sampler.n_startup_trials=4)
mkdir -p "$LOGS"

timed() {  # label, then train.py's arguments: prints "label seconds"
  local label=$1; shift
  local t0; t0=$(date +%s.%N)
  python train.py "$@" "${COMMON[@]}" > "$LOGS/$label.log" 2>&1
  echo "$label $(echo "$(date +%s.%N) - $t0" | bc)"
}

timed arch -m hparams_search=arch_optuna name=arch hydra.sweeper.n_trials=12 "${SWEEP[@]}"
for arch in mlp cnn resnet; do
  timed "$arch" -m "hparams_search=${arch}_optuna" "name=$arch" hydra.sweeper.n_trials=4 "${SWEEP[@]}"
done
best_single=$(python - "$LOGS" <<'PY'
import sys, optuna
logs = sys.argv[1]
best = min(
    (optuna.load_study(study_name=a, storage=f"sqlite:///{logs}/sweeps/{a}/optuna.db").best_value, a)
    for a in ("mlp", "cnn", "resnet")
)
print(best[1])
PY
)
timed arch_best best_of="$LOGS/sweeps/arch" test=true
timed single_best best_of="$LOGS/sweeps/$best_single" test=true

python - "$LOGS" "$best_single" <<'PY'
import json, sys
from pathlib import Path
import optuna
logs, single = Path(sys.argv[1]), sys.argv[2]
def study(name):
    return optuna.load_study(study_name=name, storage=f"sqlite:///{logs}/sweeps/{name}/optuna.db")
def tested(name):
    [record] = sorted((logs / "runs" / f"{name}_best").glob("*/metrics.json"))[-1:]
    return json.loads(record.read_text())["metrics"]["test/acc"]
arch = study("arch")
picked = {}
for t in arch.trials:
    picked[t.params["model"]] = picked.get(t.params["model"], 0) + 1
print("| side | trials | best val/loss | best architecture | test/acc of its best, retrained |")
print("| --- | --- | --- | --- | --- |")
print(f"| one study over mlp, cnn, resnet | 12 ({', '.join(f'{k} {v}' for k, v in sorted(picked.items()))}) "
      f"| {arch.best_value:.4f} | {arch.best_trial.params['model']} | {tested('arch'):.4f} |")
best = study(single)
values = ", ".join(f"{a} {study(a).best_value:.4f}" for a in ("mlp", "cnn", "resnet"))
print(f"| three studies of 4 trials ({values}) | 12 | {best.best_value:.4f} | {single} | {tested(single):.4f} |")
PY
