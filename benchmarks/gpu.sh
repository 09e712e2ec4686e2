#!/usr/bin/env bash
# GPU figures for BENCHMARKS.md in one run on one GPU, 8 minutes at most (TOTAL_S=480):
#   1. the baseline CNN's epoch time at batch 32 and 256, in float32 and bf16 mixed precision,
#      against a plain float32 PyTorch loop on the same GPU (benchmarks/epoch_time.py);
#   2. a 20-trial CNN sweep (hparams_search=cnn_optuna, 2 epochs per trial, batch 256, no
#      logger): trials per hour with 1, 4 and 8 workers sharing the GPU
#      (hydra.sweeper.workers=K hydra.sweeper.workers_per_gpu=K), the GPU's mean utilisation
#      during each (nvidia-smi, every 0.5 s), and each sweep's best value (val_loss).
#
# On the lent GPU machine (Python 3.12, torch preinstalled, no package index), after
# `bash benchmarks/gpu_bundle.sh` here and with .whl/ carried along:
#   bash benchmarks/gpu.sh                  # installs .whl/*.whl, uses .whl/fashion-mnist
#   bash benchmarks/gpu.sh <fashion-mnist dir>
# Results: $RESULTS, else $OUT/gpu_results.md when $OUT is set (the device tool brings $OUT
# back), else benchmarks/results/gpu_<UTC time>.md; each step's log next to it in gpu_logs/.
# Every step runs under `timeout`, within a deadline for the whole script; a step that runs out
# of time still reports what it finished (a sweep's trials per hour count finished trials).
# GPU_SMOKE=1 runs every step on the CPU with tiny budgets (2 trials, workers 1 and 2): a test
# runs it to prove the commands; its figures mean nothing (1-3 minutes on a shared 2-core
# machine). Knobs: EPOCHS, TRIALS, SWEEP_EPOCHS, WORKERS, PRECISIONS, OVERRIDES (extra Hydra
# overrides for every step), GPU_BUNDLE (.whl), TOTAL_S (480).
set -euo pipefail
TOTAL_S=${TOTAL_S:-480}
if [[ -z ${GPU_SH_INNER:-} ]]; then  # the whole script under one hard limit
  GPU_SH_INNER=1 exec timeout -k 10 "$TOTAL_S" bash "$0" "$@"
fi
# Steps end by DEADLINE (their `timeout` caps shrink to fit), which leaves time for a step's
# kill grace, reading the last study, the summary and copying the logs.
DEADLINE=$((SECONDS + TOTAL_S - 40))
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
command -v "$PY" >/dev/null || PY=python3
BUNDLE=${GPU_BUNDLE:-.whl}
SMOKE=${GPU_SMOKE:-}
PRECISIONS=${PRECISIONS:-32-true bf16-mixed}

if [[ -n $SMOKE ]]; then
  DEVICE=cpu TRAINER=cpu
  EPOCHS=${EPOCHS:-2} TRIALS=${TRIALS:-2} SWEEP_EPOCHS=${SWEEP_EPOCHS:-1} WORKERS=${WORKERS:-1 2}
  read -r -a EXTRA <<<"${OVERRIDES:-data.val_size=100 data.train_subset=256}"
else
  DEVICE=cuda TRAINER=gpu
  EPOCHS=${EPOCHS:-3} TRIALS=${TRIALS:-20} SWEEP_EPOCHS=${SWEEP_EPOCHS:-2} WORKERS=${WORKERS:-1 4 8}
  read -r -a EXTRA <<<"${OVERRIDES:-}"
  "$PY" - <<'PY'
import sys

import torch

if not torch.cuda.is_available():
    sys.exit(
        f"benchmarks/gpu.sh needs a CUDA GPU, and torch {torch.__version__} sees none here "
        "(torch.cuda.is_available() is False). Run it on a GPU machine with a CUDA build of torch"
        ", or GPU_SMOKE=1 bash benchmarks/gpu.sh to try its steps on the CPU."
    )
PY
fi

if [[ -n ${RESULTS:-} ]]; then
  :
elif [[ -n ${OUT:-} ]]; then
  RESULTS=$OUT/gpu_results.md
else
  RESULTS=benchmarks/results/gpu${SMOKE:+_smoke}_$(date -u +%Y%m%d_%H%M%S).md
fi
mkdir -p "$(dirname "$RESULTS")"
RESULTS=$(cd "$(dirname "$RESULTS")" && pwd)/$(basename "$RESULTS")
KEEP=$(dirname "$RESULTS")/gpu_logs
LOGS=$(mktemp -d)
SAMPLER=
STEPS=()  # "name wall", for the plan of the next run
finish() {
  [[ -z $SAMPLER ]] || kill "$SAMPLER" 2>/dev/null || true
  mkdir -p "$KEEP"
  for f in "$LOGS"/*.out "$LOGS"/*.util; do
    [[ -f $f ]] && tail -c 200000 "$f" >"$KEEP/$(basename "$f")"
  done
  for d in "$LOGS"/sweeps/*/; do
    [[ -d $d ]] || continue
    local name
    name=$(basename "$d")
    for f in "$d"optimization_results.yaml "$d"trials.csv "$d"workers/*.log; do
      [[ -f $f ]] && tail -c 100000 "$f" >"$KEEP/${name}_$(basename "$f")"
    done
  done
  rm -rf "$LOGS"
}
trap finish EXIT
trap 'exit 143' TERM INT
export WANDB_MODE=offline
unset SWEEPLAB_STORAGE  # each sweep gets its own SQLite study in its directory

say() { echo "$*" | tee -a "$RESULTS"; }

# step NAME CAP COMMAND...: runs COMMAND under timeout (CAP seconds, less when the deadline is
# nearer), its output in $LOGS/NAME.out; sets WALL (seconds) and returns COMMAND's status
# (124: out of time).
step() {
  local name=$1 cap=$2
  shift 2
  local left=$((DEADLINE - SECONDS))
  ((cap < left)) || cap=$left
  WALL=0
  if ((cap < 5)); then
    say "- $name: skipped, the script's ${TOTAL_S} s are spent"
    return 124
  fi
  local start rc=0
  start=$(date +%s.%N)
  timeout -k 10 "$cap" "$@" >"$LOGS/$name.out" 2>&1 || rc=$?
  WALL=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  STEPS+=("$name ${WALL} s")
  if ((rc == 124 || rc == 137)); then
    say "- $name: stopped after its ${cap} s limit (${WALL} s); partial figures below"
  elif ((rc != 0)); then
    say "- $name: failed with status $rc after ${WALL} s; the end of its log:"
    tail -n 15 "$LOGS/$name.out" | sed 's/^/    /' | tee -a "$RESULTS"
  fi
  return "$rc"
}

say "# sweeplab GPU benchmark ($(date -u +%Y-%m-%dT%H:%M:%SZ))"
[[ -z $SMOKE ]] || say "**GPU_SMOKE: a CPU run with tiny budgets, to test the script. Not figures.**"

if compgen -G "$BUNDLE/*.whl" >/dev/null; then
  # The bundle's tags (CPython 3.12, manylinux x86-64) given explicitly, so that the same line
  # also installs it for a smoke run under another Python (whose imports fall back to the pure
  # Python code of PyYAML, SQLAlchemy and MarkupSafe; greenlet is only for asyncio).
  if "$PY" -m pip --version >/dev/null 2>&1; then
    step install 90 "$PY" -m pip install --quiet --no-index --no-deps --no-compile \
      --disable-pip-version-check --only-binary=:all: --python-version 3.12 --implementation cp \
      --abi cp312 --abi abi3 --abi none --platform manylinux_2_28_x86_64 \
      --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
      --target "$LOGS/site" "$BUNDLE"/*.whl || { say "- the bundle did not install"; exit 1; }
  else  # no pip there: a wheel is a zip of site-packages (these have no scripts to place)
    step install 90 "$PY" -c 'import sys, zipfile
for wheel in sys.argv[2:]:
    zipfile.ZipFile(wheel).extractall(sys.argv[1])' "$LOGS/site" "$BUNDLE"/*.whl \
      || { say "- the bundle did not unpack"; exit 1; }
  fi
  # sweeplab's code from this tree's src/ (what the commit below describes, matching configs/
  # even if the bundle was built from older sources), its metadata (the entry point that
  # registers the Hydra sweeper) from the bundled wheel: as an editable install does.
  export PYTHONPATH=$PWD/src:$LOGS/site${PYTHONPATH:+:$PYTHONPATH}
  say "- installed $(compgen -G "$BUNDLE/*.whl" | wc -l) wheels from $BUNDLE in ${WALL} s"
fi
DATA=${1:-}
if [[ -z $DATA ]]; then
  for candidate in "$BUNDLE/fashion-mnist" "${FASHION_MNIST_DIR:-}" ../shared/fashion-mnist; do
    if [[ -n $candidate && -f $candidate/train-images-idx3-ubyte.gz ]]; then
      DATA=$candidate
      break
    fi
  done
fi
[[ -n $DATA && -d $DATA ]] || {
  echo "No Fashion-MNIST directory: pass one, set FASHION_MNIST_DIR or build $BUNDLE" \
    "with benchmarks/gpu_bundle.sh." >&2
  exit 1
}
DATA=$(cd "$DATA" && pwd)

step versions 60 "$PY" - <<'PY' || { say "- the stack does not import"; exit 1; }
import platform
import sys

import hydra
import optuna
import pytorch_lightning
import torch

import sweeplab
import sweeplab.sweep.sweeper  # noqa: F401
import sweeplab.train  # noqa: F401

gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU (CPU run)"
print(
    f"- {gpu}; Python {platform.python_version()}, torch {torch.__version__} (CUDA "
    f"{torch.version.cuda}), Lightning {pytorch_lightning.__version__}, hydra "
    f"{hydra.__version__}, optuna {optuna.__version__}, sweeplab from "
    f"{sweeplab.__file__.rsplit('/', 2)[0]}"
)
sys.stdout.flush()
PY
tee -a "$RESULTS" <"$LOGS/versions.out"
if command -v nvidia-smi >/dev/null && [[ -z $SMOKE ]]; then
  say "- driver $(nvidia-smi --query-gpu=driver_version --format=csv,noheader | head -1)," \
    "$(nproc) CPU cores"
fi
say "- data: $DATA; commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
  "$(git status --porcelain 2>/dev/null | grep -q . && echo '(with uncommitted changes)')"

say ""
say "## Epoch time, baseline CNN (median of epochs 2-$EPOCHS, validation excluded)"
say ""
say "| sweeplab precision | batch | sweeplab s/epoch | plain fp32 loop s/epoch | ratio |"
say "| --- | --- | --- | --- | --- |"
for precision in $PRECISIONS; do
  step "epoch_$precision" 120 "$PY" benchmarks/epoch_time.py --data-dir "$DATA" \
    --device "$DEVICE" --epochs "$EPOCHS" --experiments cnn_baseline --batch-sizes 32 256 \
    --overrides "trainer=$TRAINER" "trainer.precision=$precision" ${EXTRA[@]+"${EXTRA[@]}"} \
    || true
  # "cnn_baseline, batch 32: sweeplab 1.23 s/epoch, plain PyTorch 1.00 s/epoch, ratio 1.230 ..."
  [[ ! -f $LOGS/epoch_$precision.out ]] || awk -v p="$precision" '/^cnn_baseline, batch / {
    printf "| %s | %d | %s | %s | %s |\n", p, $3, $5, $9, $12 }' "$LOGS/epoch_$precision.out" \
    | tee -a "$RESULTS"
done

# read_study NAME WALL: "| finished | trials/hour | best |" from the sweep's SQLite study
read_study() {
  local left=$((DEADLINE + 25 - SECONDS))
  timeout $((left > 5 ? left : 5)) "$PY" - "$LOGS/sweeps/$1/optuna.db" "$1" "$2" <<'PY' \
    || echo "| n/a | n/a | n/a |"
import sys
from pathlib import Path

import optuna

path, name, wall = sys.argv[1], sys.argv[2], float(sys.argv[3])
if not Path(path).is_file():
    sys.exit(f"no study at {path}")
optuna.logging.set_verbosity(optuna.logging.WARNING)
study = optuna.load_study(study_name=name, storage=f"sqlite:///{path}")
done = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
finished = sum(t.state in done for t in study.trials)
complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
best = f"{min(t.value for t in complete):.4f}" if complete else "n/a"
per_hour = f"{finished * 3600 / wall:.0f}" if wall > 0 else "n/a"
print(f"| {finished} | {per_hour} | {best} |")
PY
}

say ""
say "## ${TRIALS}-trial CNN sweep on one GPU (epochs per trial: ${SWEEP_EPOCHS}, batch 256)"
say ""
say "| workers | wall s | finished trials | trials/hour | mean GPU util | peak GPU memory" \
  "| best val_loss |"
say "| --- | --- | --- | --- | --- | --- | --- |"
caps=(150 100 100 100)
i=0
for k in $WORKERS; do
  name=gpu_sweep_${k}w
  SAMPLER=
  if command -v nvidia-smi >/dev/null && [[ -z $SMOKE ]]; then
    nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader,nounits -lms 500 \
      >"$LOGS/$name.util" 2>/dev/null &
    SAMPLER=$!
  fi
  step "$name" "${caps[i]:-100}" "$PY" train.py -m hparams_search=cnn_optuna "trainer=$TRAINER" \
    "name=$name" "paths.log_dir=$LOGS" "data.data_dir=$DATA" data.batch_size=256 \
    "trainer.max_epochs=$SWEEP_EPOCHS" "hydra.sweeper.n_trials=$TRIALS" logger=none \
    callbacks.rich_progress_bar=null "hydra.sweeper.workers=$k" \
    "hydra.sweeper.workers_per_gpu=$k" ${EXTRA[@]+"${EXTRA[@]}"} || true
  if [[ -n $SAMPLER ]]; then
    kill "$SAMPLER" 2>/dev/null || true
    wait "$SAMPLER" 2>/dev/null || true
    SAMPLER=
  fi
  util=n/a memory=n/a
  if [[ -s $LOGS/$name.util ]]; then
    util=$(awk -F', *' '{ s += $1; n++ } END { if (n) printf "%.0f%%", s / n }' "$LOGS/$name.util")
    memory=$(awk -F', *' '$2 > m { m = $2 } END { printf "%d MiB", m }' "$LOGS/$name.util")
  fi
  study=$(read_study "$name" "$WALL")
  # study prints "| finished | trials/hour | best |"; the table wants wall first, util between
  IFS='|' read -r _ finished per_hour best _ <<<"$study"
  say "| $k | $WALL |$finished|$per_hour| $util | $memory |$best|"
  i=$((i + 1))
done
say ""
say "Steps (wall): $(IFS=,; echo "${STEPS[*]}" | sed 's/,/, /g'); whole script ${SECONDS} s."
say "Logs: $KEEP"
