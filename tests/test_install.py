"""sweeplab installed from its wheel, used from the user's own repository: the wheel's files,
the repository found by convention, ``sweeplab init``'s starter, and the installed commands
run end to end from a fresh virtual environment outside the checkout."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest
import tomllib

from sweeplab import app, trust, user_repo
from sweeplab.errors import ConfigError
from sweeplab.scaffold import STARTER, write_starter
from tests.conftest import QUICK, ROOT

SRC = ROOT / "src" / "sweeplab"


def test_the_listed_packages_are_every_package_of_the_source() -> None:
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    on_disk = {
        ".".join(("sweeplab", *p.parent.relative_to(SRC).parts))
        for p in SRC.rglob("__init__.py")
        if not p.is_relative_to(STARTER)  # the starter's package is the user's, copied
    }
    assert set(setuptools["packages"]) == on_disk | {"sweeplab.configs"}


def test_a_checkout_uses_its_own_configs() -> None:
    assert app.own_configs() == ROOT / "configs"


def test_the_repository_is_the_directory_holding_configs(tmp_path: Path) -> None:
    assert user_repo.find(None, tmp_path) is None
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "sweeplab.yaml").write_text("trusted: [myarch, lab.models]\n")
    found = user_repo.find(None, tmp_path)
    assert found == user_repo.UserRepo(tmp_path, tmp_path / "configs", ("myarch", "lab.models"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert user_repo.find("../configs", elsewhere) == found  # --config-dir, from anywhere
    with pytest.raises(ConfigError, match="--config-dir nowhere is not a directory"):
        user_repo.find("nowhere", tmp_path)


@pytest.mark.parametrize(
    ("text", "refusal"),
    [
        ("trusted: myarch\n", "not a list of names"),
        ("trusted: [my-arch]\n", "'my-arch', which is not a module prefix"),
        ("trusted: [a\n", "is not valid YAML"),
    ],
)
def test_a_bad_trust_declaration_is_one_paragraph(tmp_path: Path, text: str, refusal: str) -> None:
    (tmp_path / "sweeplab.yaml").write_text(text)
    with pytest.raises(ConfigError, match=refusal):
        user_repo.read_trusted(tmp_path / "sweeplab.yaml")


def test_entering_the_repository_trusts_its_packages_for_this_process_and_its_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(trust.TRUSTED_ENV, "lab")
    monkeypatch.setenv(user_repo.ROOT_ENV, "/kept")  # a root the user set wins
    monkeypatch.setattr(sys, "path", list(sys.path))
    user_repo.enter(user_repo.UserRepo(tmp_path, tmp_path / "configs", ("myarch", "lab")))
    assert os.environ[trust.TRUSTED_ENV] == "lab,myarch"
    assert trust.trusted_targets()[-2:] == ["lab.*", "myarch.*"]
    assert sys.path[0] == str(tmp_path) and os.environ[user_repo.ROOT_ENV] == "/kept"


def test_init_writes_the_starter_into_a_new_directory_only(tmp_path: Path) -> None:
    written = write_starter(tmp_path / "mine")
    assert {str(p) for p in written} >= {
        "README.md",
        "configs/sweeplab.yaml",
        "configs/model/mynet.yaml",
        "configs/hparams_search/mynet_optuna.yaml",
        "mynet/__init__.py",
        "mynet/net.py",
    }
    assert user_repo.find(None, tmp_path / "mine").trusted == ("mynet",)
    with pytest.raises(ConfigError, match="already exists and is not an empty directory"):
        write_starter(tmp_path / "mine")


def _wheel(tmp_path: Path) -> Path:
    """The wheel, built from a copy of what the build reads (the checkout is left as it is)."""
    source = tmp_path / "source"
    for name in ("src", "configs"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
        + ["-w", str(tmp_path / "dist"), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    [wheel] = (tmp_path / "dist").glob("sweeplab-*.whl")
    return wheel


def _readme_commands(readme: Path) -> list[list[str]]:
    """The arguments of each ``sweeplab`` command in ``readme``'s first bash block."""
    block = readme.read_text().split("```bash", 1)[1].split("```", 1)[0]
    commands = [shlex.split(line, comments=True) for line in block.splitlines() if line.strip()]
    assert all(c[0] == "sweeplab" for c in commands), commands
    return [c[1:] for c in commands]


@pytest.mark.slow  # builds the wheel, makes a virtual environment, runs the installed commands
def test_the_installed_commands_train_and_sweep_the_starter(
    tmp_path: Path, fashion_dir: Path, isolated_env: dict[str, str]
) -> None:
    wheel = _wheel(tmp_path)
    names = set(zipfile.ZipFile(wheel).namelist())
    for path in (ROOT / "configs").rglob("*"):
        if path.is_file():
            assert f"sweeplab/configs/{path.relative_to(ROOT / 'configs')}" in names
    for path in SRC.rglob("*"):
        if path.is_file() and "__pycache__" not in path.parts:
            assert f"sweeplab/{path.relative_to(SRC)}" in names

    env_dir = tmp_path / "venv"  # torch, Lightning, Hydra, ... from the system's packages
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(env_dir)
    python, sweeplab = env_dir / "bin" / "python", env_dir / "bin" / "sweeplab"
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q"]
        + ["--no-deps", "--no-index", "--force-reinstall", str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert installed.returncode == 0, installed.stderr[-3000:]
    env = {  # nothing of the checkout's: no PYTHONPATH, no trust or root variables
        k: v
        for k, v in isolated_env.items()
        if k not in ("PYTHONPATH", trust.TRUSTED_ENV, user_repo.ROOT_ENV)
    }
    where = subprocess.run(
        [str(python), "-c", "import sweeplab; print(sweeplab.__file__)"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert Path(where.stdout.strip()).is_relative_to(env_dir), where.stdout + where.stderr

    def command(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(sweeplab), *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=600
        )
        assert done.returncode == 0, done.stderr[-3000:]
        assert "Traceback" not in done.stderr
        return done

    tiny = (f"data.data_dir={fashion_dir}", "trainer.max_epochs=1", "logger=none", *QUICK[:2])
    elsewhere = tmp_path / "elsewhere"  # sweeplab's own configs, from any directory
    elsewhere.mkdir()
    command("train", "experiment=cnn_baseline", *tiny, "data.train_subset=200", cwd=elsewhere)
    assert list((elsewhere / "logs" / "runs" / "cnn_baseline").glob("*/metrics.json"))

    repo = tmp_path / "my_research"
    command("init", str(repo), cwd=tmp_path)
    # the starter README's own commands, each with tiny settings added
    single, search, best, evaluate = _readme_commands(repo / "README.md")
    command(*single, *tiny, cwd=repo)
    [run_dir] = (repo / "logs" / "runs" / "mynet").iterdir()
    assert "test/acc" in json.loads((run_dir / "metrics.json").read_text())["metrics"]

    two = ("hydra.sweeper.n_trials=2", "hydra.sweeper.workers=2", QUICK[2])
    command(*search, *two, *tiny, cwd=repo)
    sweep_dir = repo / "logs" / "sweeps" / "mynet_optuna"
    assert len(list(sweep_dir.glob("trial_*/metrics.json"))) == 2

    command(*best, *QUICK[:2], cwd=repo)  # the sweep's data and tiny settings come with it
    [best_dir] = (repo / "logs" / "runs" / "mynet_optuna_best").iterdir()
    assert (best_dir / "checkpoints" / "best.ckpt").is_file()
    evaluate = [arg.replace("<time>", best_dir.name) for arg in evaluate]
    evaluated = command(*evaluate, f"data.data_dir={fashion_dir}", cwd=repo)
    assert "test/acc=" in evaluated.stdout


def test_the_python_api_trains_the_starter_and_raises_a_refusal(
    tmp_path: Path, fashion_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sweeplab

    assert sweeplab.run is app.run and sweeplab.run_sweep is app.run_sweep
    repo = tmp_path / "repo"
    write_starter(repo)
    monkeypatch.setenv(trust.TRUSTED_ENV, "")  # what the run sets here is restored afterwards
    monkeypatch.setenv(user_repo.ROOT_ENV, str(repo))
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.chdir(repo)
    tiny = [f"data.data_dir={fashion_dir}", "trainer.max_epochs=1", "logger=none", *QUICK[:2]]
    record = sweeplab.run(["model=mynet", *tiny])
    assert Path(record["ckpt_path"]).is_relative_to(repo / "logs" / "runs" / "mynet")
    assert "test/acc" in record["metrics"]
    with pytest.raises(ConfigError, match=r"channels=0 is invalid"):
        sweeplab.run(["model=mynet", "model.net.channels=0", *tiny])
    (repo / "configs" / "sweeplab.yaml").write_text("trusted: []\n")
    monkeypatch.setenv(trust.TRUSTED_ENV, "")
    with pytest.raises(ConfigError, match=r"configs/sweeplab.yaml \(`trusted: \[mynet\]`\)"):
        sweeplab.run(["model=mynet", *tiny])
