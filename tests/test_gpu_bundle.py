"""The bundle for the lent GPU machine (benchmarks/gpu_bundle.sh) is complete and installs, and
benchmarks/gpu.sh runs every one of its steps with it (GPU_SMOKE=1: on the CPU, tiny budgets).

The GPU machine runs Python 3.12 and reaches no package index; this one runs Python 3.11. The
pure-Python wheels import here as they will there. The compiled cp312 wheels (SQLAlchemy,
PyYAML, MarkupSafe, greenlet) install here with explicit target tags, but their extension
modules cannot load under 3.11: SQLAlchemy, PyYAML and MarkupSafe fall back to their pure
Python code, greenlet (SQLAlchemy's asyncio extra only) is not imported. For those four the
metadata check (tags, requirements) is what this machine can verify.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from email.parser import HeaderParser
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

from tests.conftest import REAL_DATA, ROOT

# each test runs a script or pip as a process
pytestmark = pytest.mark.slow

BUNDLE_SCRIPT = ROOT / "benchmarks" / "gpu_bundle.sh"
GPU_SCRIPT = ROOT / "benchmarks" / "gpu.sh"
# The GPU machine's interpreter, for environment markers.
GPU_MACHINE = {
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
# Installs the cp312 wheels whatever Python runs pip (as benchmarks/gpu.sh does).
TARGET_TAGS = [
    "--only-binary=:all:",
    "--python-version",
    "3.12",
    "--implementation",
    "cp",
    "--abi",
    "cp312",
    "--abi",
    "abi3",
    "--abi",
    "none",
    "--platform",
    "manylinux_2_28_x86_64",
    "--platform",
    "manylinux_2_17_x86_64",
    "--platform",
    "manylinux2014_x86_64",
]


def this_python_first(env: dict[str, str]) -> dict[str, str]:
    """``env`` with this interpreter's directory first on PATH (the scripts call ``python``)."""
    return dict(env, PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]))


def script_lists() -> dict[str, set[str]]:
    """WHEELS, PREINSTALLED and LEFT_OUT as benchmarks/gpu_bundle.sh defines them."""
    done = subprocess.run(
        ["bash", str(BUNDLE_SCRIPT), "--lists"], capture_output=True, text=True, check=True
    )
    lists = {}
    for line in done.stdout.splitlines():
        key, _, items = line.partition(": ")
        lists[key] = set(items.split())
    return lists


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundle, built by the script into a temporary directory (the checkout's .whl/ is
    left alone), with the real Fashion-MNIST files when they are here."""
    directory = tmp_path_factory.mktemp("gpu-bundle") / "whl"
    env = this_python_first(dict(os.environ, BUNDLE_DIR=str(directory)))
    if (REAL_DATA / "train-images-idx3-ubyte.gz").is_file():
        env["FASHION_MNIST_DIR"] = str(REAL_DATA)
    else:
        from tests.idx_files import write_fashion_mnist

        env["FASHION_MNIST_DIR"] = str(write_fashion_mnist(directory.parent / "fashion-mnist"))
    done = subprocess.run(
        ["bash", str(BUNDLE_SCRIPT)], capture_output=True, text=True, timeout=300, env=env
    )
    if done.returncode and "wheel can be downloaded here" in done.stderr:
        reason = done.stderr.strip().splitlines()[-1]
        print(reason)
        pytest.skip(reason)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    size = re.search(r"total ([0-9.]+) MiB of 60 MiB", done.stdout)
    assert size and float(size.group(1)) < 60, done.stdout
    print(done.stdout)
    return directory


def wheel_requirements(wheel: Path) -> list[Requirement]:
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        headers = HeaderParser().parsestr(archive.read(name).decode())
    return [Requirement(r) for r in headers.get_all("Requires-Dist") or []]


def test_bundle_scripts_parse() -> None:
    for script in (BUNDLE_SCRIPT, GPU_SCRIPT):
        subprocess.run(["bash", "-n", str(script)], check=True)


def test_every_requirement_of_every_bundled_wheel_is_bundled(bundle: Path) -> None:
    lists = script_lists()
    excluded = {canonicalize_name(n) for n in lists["preinstalled"] | lists["left_out"]}
    assert {"torch", "pytorch-lightning", "numpy", "scipy", "wandb"} <= excluded
    versions = {}
    for wheel in bundle.glob("*.whl"):
        name, version, _, _ = parse_wheel_filename(wheel.name)
        assert name not in versions, f"two wheels of {name}"
        versions[name] = version
    pinned = {canonicalize_name(Requirement(s).name): s for s in lists["wheels"]}
    assert set(versions) == set(pinned) | {"sweeplab"}
    unmet = []
    for wheel in bundle.glob("*.whl"):
        for req in wheel_requirements(wheel):
            if req.marker is not None and not req.marker.evaluate(GPU_MACHINE):
                continue  # extras, other platforms, older Pythons
            needed = canonicalize_name(req.name)
            if needed in excluded:
                continue
            if needed not in versions or not req.specifier.contains(
                versions[needed], prereleases=True
            ):
                unmet.append(f"{wheel.name}: {req}")
    assert not unmet
    # what sweeplab's benchmark needs, by name
    for name in ("hydra-core", "omegaconf", "antlr4-python3-runtime", "optuna", "sqlalchemy"):
        assert name in versions
    assert (bundle / "fashion-mnist" / "train-images-idx3-ubyte.gz").is_file()


def test_the_bundle_check_names_a_missing_wheel(bundle: Path, tmp_path: Path) -> None:
    partial = tmp_path / "whl"
    partial.mkdir()
    for wheel in bundle.glob("*.whl"):
        if not wheel.name.startswith("alembic-"):
            shutil.copy(wheel, partial)
    (partial / "fashion-mnist").symlink_to(bundle / "fashion-mnist")
    env = this_python_first(dict(os.environ, BUNDLE_DIR=str(partial)))
    done = subprocess.run(
        ["bash", str(BUNDLE_SCRIPT), "--check"], capture_output=True, text=True, env=env
    )
    assert done.returncode == 1
    assert "optuna 5.0.0 requires alembic>=1.5.0, which is not bundled" in done.stderr


def blocked_modules(directory: Path) -> Path:
    """Stand-ins for what the bundle leaves out: importing one fails, as on the GPU machine."""
    for name in ("wandb", "optuna_dashboard"):
        (directory / name).mkdir(parents=True)
        (directory / name / "__init__.py").write_text(
            f"raise ImportError('{name} is not on the GPU machine')\n"
        )
    return directory


def test_the_bundle_installs_and_sweeplab_imports_from_it(bundle: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    install = [sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps"]
    install += [*TARGET_TAGS, "--target", str(site), *map(str, bundle.glob("*.whl"))]
    subprocess.run(install, check=True, capture_output=True, timeout=120)
    blocked = blocked_modules(tmp_path / "blocked")
    code = """
import sys
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
import hydra, omegaconf, optuna, sqlalchemy, alembic, cmaes, yaml, sweeplab
import sweeplab.train, sweeplab.sweep.sweeper
for module in (hydra, omegaconf, optuna, sqlalchemy, alembic, cmaes, yaml, sweeplab):
    assert module.__file__.startswith(sys.argv[1]), module.__file__
sweepers = [p.__name__ for p in Plugins.instance().discover(Sweeper)]
assert "SweeplabOptunaSweeper" in sweepers, sweepers
assert "wandb" not in sys.modules and "optuna_dashboard" not in sys.modules
print("imported", optuna.__version__, hydra.__version__)
"""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), str(blocked)]))
    done = subprocess.run(
        [sys.executable, "-c", code, str(site)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=str(tmp_path),  # not the checkout: sweeplab must come from the bundle
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "imported 5.0.0 1.4.0rc3" in done.stdout


def test_gpu_script_runs_every_step_with_the_bundle_on_the_cpu(
    bundle: Path, fashion_dir: Path, tmp_path: Path, isolated_env: dict[str, str]
) -> None:
    """GPU_SMOKE=1 bash benchmarks/gpu.sh, with wandb and optuna-dashboard unimportable (the
    bundle leaves them out): installs the bundle, times bf16 at both batch sizes and sweeps with
    two worker processes. The GPU run's other rows (float32, one worker) are the same commands
    with another value; the narrower run keeps this test near a minute on 2 cores."""
    results = tmp_path / "out" / "gpu_results.md"
    env = dict(
        isolated_env,
        GPU_SMOKE="1",
        PRECISIONS="bf16-mixed",
        WORKERS="2",
        GPU_BUNDLE=str(bundle),
        RESULTS=str(results),
        PYTHONPATH=str(blocked_modules(tmp_path / "blocked")),
    )
    done = subprocess.run(
        ["bash", str(GPU_SCRIPT), str(fashion_dir)],
        capture_output=True,
        text=True,
        timeout=300,
        env=this_python_first(env),
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    text = results.read_text()
    assert "Not figures" in text and "failed" not in text and "stopped" not in text, text
    wheels = len(list(bundle.glob("*.whl")))
    assert f"installed {wheels} wheels from {bundle}" in text, text
    assert f"sweeplab from {ROOT / 'src'}" in text, text  # the tree's code, the bundle's metadata
    for batch in (32, 256):  # sweeplab bf16 and plain fp32 seconds per epoch, their ratio
        row = rf"^\| bf16-mixed \| {batch} \| [0-9.]+ \| [0-9.]+ \| [0-9.]+ \|$"
        assert re.search(row, text, re.M), text
    # 2 workers: wall, 2 finished trials, trials/hour, no GPU to sample, the best val_loss
    assert re.search(r"^\| 2 \| [0-9.]+ \| 2 \| [0-9]+ \| n/a \| n/a \| [0-9.]+ \|$", text, re.M)
    logs = results.parent / "gpu_logs"
    assert list(logs.glob("gpu_sweep_2w_worker_1_*.log"))  # worker logs: by host and process
