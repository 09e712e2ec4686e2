"""An architecture from the user's own package and config directory, outside sweeplab: a
single run, a sweep over its own space, best_of and eval.py, as the README shows them."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from sweeplab.record import git_commit
from tests.conftest import QUICK, ROOT, load_study, run_entry

README = ROOT / "README.md"


def readme_files(section: str = "### Adding an architecture") -> dict[str, str]:
    """The files a README section shows: each code block whose first line (after a Hydra
    package header) is ``# <path>``."""
    text = README.read_text()
    start = text.index(section)
    body = text[start : text.index("\n## ", start)]
    blocks = re.findall(
        r"```(?:python|yaml)\n((?:# @package [^\n]*\n)?)# (\S+)\n(.*?)```", body, flags=re.DOTALL
    )
    return {path: f"{header}# {path}\n{code}" for header, path, code in blocks}


@pytest.fixture
def user_dir(tmp_path: Path) -> Path:
    """The user's own repository, outside sweeplab, written from the README's own text."""
    root = tmp_path / "my_research"
    files = readme_files()
    assert {"myarch/tinyres.py", "configs/model/tinyres.yaml"} <= set(files)
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    (root / "myarch" / "__init__.py").write_text("")
    return root


@pytest.mark.slow  # train.py and eval.py as processes
def test_an_architecture_from_the_user_s_package(
    user_dir: Path, fashion_dir: Path, tmp_path: Path, isolated_env: dict[str, str]
) -> None:
    logs = tmp_path / "logs"
    # the user's package first, without hiding a PYTHONPATH the tests run under
    path = os.pathsep.join(filter(None, [str(user_dir), isolated_env.get("PYTHONPATH")]))
    env = {**isolated_env, "PYTHONPATH": path, "SWEEPLAB_TRUSTED": "myarch"}
    common = (
        f"hydra.searchpath=[file://{user_dir}/configs]",
        f"data.data_dir={fashion_dir}",
        "trainer.max_epochs=1",
        "logger=none",
        *QUICK[:2],
    )

    single = run_entry("train.py", "model=tinyres", *common, env=env, log_dir=logs)
    assert single.returncode == 0, single.stderr[-3000:]
    [run_dir] = (logs / "runs" / "tinyres").iterdir()
    assert "test/acc" in json.loads((run_dir / "metrics.json").read_text())["metrics"]

    untrusted = {k: v for k, v in env.items() if k != "SWEEPLAB_TRUSTED"}
    refused = run_entry("train.py", "model=tinyres", *common, env=untrusted, log_dir=logs)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "`model.net._target_`='myarch.tinyres.TinyRes' is not trusted" in refused.stderr
    assert "SWEEPLAB_TRUSTED=myarch" in refused.stderr

    sweep = run_entry(
        "train.py",
        "-m",
        "hparams_search=tinyres_optuna",
        "hydra.sweeper.n_trials=2",
        *common,
        env=env,
        log_dir=logs,
    )
    assert sweep.returncode == 0, sweep.stderr[-3000:]
    sweep_dir = logs / "sweeps" / "tinyres_optuna"
    assert len(list(sweep_dir.glob("trial_*/metrics.json"))) == 2

    # best_of carries the search path itself: no need to repeat it
    best = run_entry(
        "train.py",
        f"best_of={sweep_dir}",
        f"data.data_dir={fashion_dir}",
        *QUICK[:2],
        env=env,
        log_dir=logs,
    )
    assert best.returncode == 0, best.stderr[-3000:]
    [best_dir] = (logs / "runs" / "tinyres_optuna_best").iterdir()
    ckpt = best_dir / "checkpoints" / "best.ckpt"
    assert ckpt.is_file()

    evaluated = run_entry(
        "eval.py", f"ckpt_path={ckpt}", f"data.data_dir={fashion_dir}", env=env, log_dir=logs
    )
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    assert "test/acc=" in evaluated.stdout

    # the user's architecture joins a study across architectures by its name and space file
    across = run_entry(
        "train.py",
        "-m",
        "hparams_search=my_archs",
        "hydra.sweeper.n_trials=3",
        "hydra/sweeper/sampler=random",
        "hydra.sweeper.sampler.seed=1",
        *common,
        env=env,
        log_dir=logs,
    )
    assert across.returncode == 0, across.stderr[-3000:]
    study = load_study(logs / "sweeps" / "my_archs")
    chosen = {t.params["model"] for t in study.trials}
    assert "tinyres" in chosen and chosen <= {"cnn", "tinyres"}
    for trial in study.trials:
        arch = trial.params["model"]
        assert all(n == "model" or n.startswith(f"{arch}:") for n in trial.params)


def test_untracked_files_make_the_recorded_commit_dirty(tmp_path: Path) -> None:
    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "train.py").write_text("")
    git("add", "train.py")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x")
    assert not git_commit(tmp_path).endswith("-dirty")
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "new_model.yaml").write_text("net: {}\n")
    assert git_commit(tmp_path).endswith("-dirty")
