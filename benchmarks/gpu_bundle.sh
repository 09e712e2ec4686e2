#!/usr/bin/env bash
# What benchmarks/gpu.sh needs on the lent GPU machine, gathered into .whl/ (ignored by git;
# carry it with the working tree): that machine runs Python 3.12 on x86-64 Linux with torch,
# Lightning, torchmetrics, scipy, matplotlib and rich preinstalled, and reaches no package
# index. The bundle holds Python 3.12 manylinux wheels of everything else sweeplab imports,
# sweeplab's own wheel and the four Fashion-MNIST files (.whl/fashion-mnist/), and must stay
# under 60 MiB (the device tool carries 64 MiB in all).
#
#   bash benchmarks/gpu_bundle.sh            # download, build, copy the data, check, print the size
#   bash benchmarks/gpu_bundle.sh --check    # check an existing bundle only
#   bash benchmarks/gpu_bundle.sh --lists    # print the lists below, one "name: items" line each
#
# BUNDLE_DIR (default .whl) and FASHION_MNIST_DIR (default ../shared/fashion-mnist) move them.
# The check: every wheel installs on CPython 3.12 / manylinux_2_28 x86-64 (torch 2.11's own
# floor), one version per project, and every requirement (Requires-Dist, extras excluded,
# markers evaluated for that machine) of every bundled wheel is met by a bundled wheel, or is
# PREINSTALLED, or LEFT_OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
BUNDLE=${BUNDLE_DIR:-.whl}
DATA=${FASHION_MNIST_DIR:-../shared/fashion-mnist}
LIMIT_MIB=60
PYTHON=${PYTHON:-python}

# Every wheel the GPU machine lacks, one pinned version each (those installed on the
# development machine, 2026-11-30). PyYAML, tqdm, MarkupSafe, typing-extensions and packaging
# are dependencies of torch or Lightning too, so the GPU machine has some version of each; the
# bundle carries its own (they shadow the preinstalled ones through PYTHONPATH) so that no
# version floor of optuna, alembic or hydra depends on what that machine happens to hold.
WHEELS=(
  hydra-core==1.4.0rc3
  omegaconf==2.4.1rc1
  antlr4-python3-runtime==4.13.2
  hydra-optuna-sweeper==1.4.0rc3
  hydra-joblib-launcher==1.4.0rc3
  joblib==1.6.0
  cloudpickle==3.1.3
  optuna==5.0.0
  alembic==1.20.1
  SQLAlchemy==2.1.9
  greenlet==3.5.6
  Mako==1.4.3
  MarkupSafe==3.0.3
  colorlog==6.12.0
  tqdm==4.70.1
  PyYAML==6.0.3
  cmaes==0.13.1
  typing-extensions==4.16.0
  packaging==26.2
)
# On the GPU machine already (with their own dependencies): never bundled; a requirement on
# one of these counts as met.
PREINSTALLED=(torch pytorch-lightning lightning lightning-utilities torchmetrics scipy numpy
  matplotlib rich)
# sweeplab requires these but imports them only when used: wandb for logger=wandb (gpu.sh runs
# logger=none and epoch_time.py logger=csv), optuna-dashboard for `sweeplab dashboard`. wandb's
# wheel alone is about 20 MB.
LEFT_OUT=(wandb optuna-dashboard)

if [[ ${1:-} == --lists ]]; then
  echo "wheels: ${WHEELS[*]}"
  echo "preinstalled: ${PREINSTALLED[*]}"
  echo "left_out: ${LEFT_OUT[*]}"
  exit 0
fi

check() {
  BUNDLE=$BUNDLE LIMIT_MIB=$LIMIT_MIB WHEELS="${WHEELS[*]}" PREINSTALLED="${PREINSTALLED[*]}" \
    LEFT_OUT="${LEFT_OUT[*]}" "$PYTHON" - <<'PY'
import os
import sys
import zipfile
from email.parser import HeaderParser
from pathlib import Path

from packaging.requirements import Requirement
from packaging.tags import compatible_tags, cpython_tags
from packaging.utils import canonicalize_name, parse_wheel_filename

bundle = Path(os.environ["BUNDLE"])
pins = {canonicalize_name(Requirement(s).name): s for s in os.environ["WHEELS"].split()}
preinstalled = {canonicalize_name(n) for n in os.environ["PREINSTALLED"].split()}
left_out = {canonicalize_name(n) for n in os.environ["LEFT_OUT"].split()}
# CPython 3.12 on x86-64 Linux with glibc >= 2.28 (torch 2.11's CUDA wheels need it)
platforms = [f"manylinux_2_{minor}_x86_64" for minor in range(28, 4, -1)]
platforms += ["manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"]
target_tags = {
    *cpython_tags((3, 12), abis=["cp312", "abi3", "none"], platforms=platforms),
    *compatible_tags((3, 12), "cp312", platforms),
}
machine = {
    "python_version": "3.12",
    "python_full_version": "3.12.3",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "implementation_version": "3.12.3",
    "os_name": "posix",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "platform_release": "",
    "platform_version": "",
    "extra": "",
}

problems, bundled, requirements = [], {}, {}
for wheel in sorted(bundle.glob("*.whl")):
    name, version, _, tags = parse_wheel_filename(wheel.name)
    if not tags & target_tags:
        problems.append(f"{wheel.name} does not install on CPython 3.12 manylinux x86-64")
    if name in bundled:
        problems.append(f"two versions of {name}: {bundled[name]} and {version}")
    bundled[name] = version
    with zipfile.ZipFile(wheel) as archive:
        metadata = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        headers = HeaderParser().parsestr(archive.read(metadata).decode())
    requirements[name] = [Requirement(r) for r in headers.get_all("Requires-Dist") or []]

for name, spec in pins.items():
    wanted = Requirement(spec)
    if name not in bundled:
        problems.append(f"{spec} is not in {bundle}")
    elif not wanted.specifier.contains(bundled[name], prereleases=True):
        problems.append(f"{spec} is pinned, but {bundle} holds {name} {bundled[name]}")
for name in sorted(bundled.keys() & (preinstalled | left_out)):
    problems.append(f"{name} is bundled although it is listed as preinstalled or left out")
if canonicalize_name("sweeplab") not in bundled:
    problems.append(f"sweeplab's own wheel is not in {bundle}")

met = 0
for name, reqs in sorted(requirements.items()):
    for req in reqs:
        if req.marker is not None and not req.marker.evaluate(machine):
            continue  # an extra, or another platform's or Python's requirement
        needed = canonicalize_name(req.name)
        if needed in preinstalled or needed in left_out:
            continue
        if needed not in bundled:
            problems.append(f"{name} {bundled[name]} requires {req}, which is not bundled")
        elif not req.specifier.contains(bundled[needed], prereleases=True):
            problems.append(f"{name} requires {req}, but {needed} {bundled[needed]} is bundled")
        else:
            met += 1

data = bundle / "fashion-mnist"
for image_set in ("train", "t10k"):
    for kind in ("images-idx3", "labels-idx1"):
        if not (data / f"{image_set}-{kind}-ubyte.gz").is_file():
            problems.append(f"{data}/{image_set}-{kind}-ubyte.gz is missing")
size = sum(p.stat().st_size for p in bundle.rglob("*") if p.is_file()) / 2**20
limit = float(os.environ["LIMIT_MIB"])
if size >= limit:
    problems.append(f"the bundle is {size:.1f} MiB, over the {limit:.0f} MiB limit")
if problems:
    sys.exit("The GPU bundle is incomplete:\n  " + "\n  ".join(problems))
print(
    f"GPU bundle {bundle}: {len(bundled)} wheels (CPython 3.12 manylinux x86-64), "
    f"{met} requirements met inside it, the rest preinstalled ({' '.join(sorted(preinstalled))})"
    f" or left out ({' '.join(sorted(left_out))}); data {data}; "
    f"total {size:.1f} MiB of {limit:.0f} MiB"
)
PY
}

if [[ ${1:-} == --check ]]; then
  check
  exit
fi
[[ $# -eq 0 ]] || { echo "usage: bash benchmarks/gpu_bundle.sh [--check | --lists]" >&2; exit 2; }

for image_set in train t10k; do
  for kind in images-idx3 labels-idx1; do
    [[ -f $DATA/$image_set-$kind-ubyte.gz ]] || {
      echo "No Fashion-MNIST file $DATA/$image_set-$kind-ubyte.gz: set FASHION_MNIST_DIR to the" \
        "directory that holds the four .gz files." >&2
      exit 1
    }
  done
done

mkdir -p "$BUNDLE"
rm -f "$BUNDLE"/*.whl
# Wheels for the GPU machine, not for this one: pip picks files by the tags given here.
TARGET=(--only-binary=:all: --no-deps --python-version 3.12 --implementation cp --abi cp312
  --abi abi3 --abi none --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64
  --platform manylinux2014_x86_64)
quiet() {  # pip's notes on the file:// indexes that lack a project are noise here
  "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
}
if ! quiet "$PYTHON" -m pip download --quiet "${TARGET[@]}" --dest "$BUNDLE" "${WHEELS[@]}"; then
  missing=()
  for spec in "${WHEELS[@]}"; do
    "$PYTHON" -m pip download --quiet "${TARGET[@]}" --dest "$BUNDLE" "$spec" >/dev/null 2>&1 \
      || missing+=("$spec")
  done
  [[ ${#missing[@]} -gt 0 ]] || missing=("none alone: see pip's error above")
  echo "No CPython 3.12 manylinux x86-64 wheel can be downloaded here (from pip's configured" \
    "indexes, see pip config list) for: ${missing[*]}" >&2
  exit 1
fi

# sweeplab's own wheel, built from a copy of the sources (so no build/ lands in the tree)
SRC=$(mktemp -d)
trap 'rm -rf "$SRC"' EXIT
cp pyproject.toml README.md "$SRC"/
cp -r src "$SRC"/src
cp -r configs "$SRC"/configs  # packaged into the wheel as sweeplab/configs (pyproject.toml)
find "$SRC" \( -name __pycache__ -o -name '*.egg-info' \) -prune -exec rm -rf {} +
"$PYTHON" -m pip wheel --quiet --no-deps --no-build-isolation --wheel-dir "$BUNDLE" "$SRC" \
  || "$PYTHON" -m pip wheel --quiet --no-deps --wheel-dir "$BUNDLE" "$SRC"

mkdir -p "$BUNDLE/fashion-mnist"
for image_set in train t10k; do
  for kind in images-idx3 labels-idx1; do
    install -m 644 "$DATA/$image_set-$kind-ubyte.gz" "$BUNDLE/fashion-mnist/"
  done
done

check
echo "Carry $BUNDLE to the GPU machine with the working tree; there: bash benchmarks/gpu.sh"
