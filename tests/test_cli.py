"""The ``sweeplab`` command in this process (``cli.main(argv)``): its output and its
one-paragraph refusals, for the fast loop; the tests that run it as a process are slow."""

from __future__ import annotations

import _thread
import json
import socket
import sys
import threading
import urllib.request
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from hydra.core.global_hydra import GlobalHydra
from optuna.storages import InMemoryStorage
from optuna.trial import TrialState

from sweeplab import cli, dashboard, record
from sweeplab.sweep import report
from sweeplab.sweep import study as stored
from sweeplab.sweep.storage import open_storage
from tests.conftest import ROOT


def refused(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """The paragraph ``sweeplab argv...`` exits with (status 1), without a traceback."""
    with pytest.raises(SystemExit) as exited:
        cli.main(list(argv))
    assert exited.value.code == 1
    return capsys.readouterr().err


@pytest.fixture
def sweep_dir(tmp_path: Path) -> Path:
    """A finished two-trial study and its results file, as the sweeper leaves them."""
    directory = tmp_path / "sweep"
    directory.mkdir()
    study = optuna.create_study(study_name="demo", storage=f"sqlite:///{directory}/optuna.db")
    study.set_user_attr(stored.BASE_OVERRIDES, ["model=mlp"])
    for value, units in ((0.5, 100), (0.3, 200)):
        study.enqueue_trial({"model.net.units": units})  # the overrides match the parameters
        trial = study.ask()
        trial.suggest_int("model.net.units", 50, 350, step=50)
        trial.set_user_attr(stored.OVERRIDES, [f"model.net.units={units}"])
        study.tell(trial, value)
    best = study.best_trial
    report.write_results(study, study.trials, best, directory / report.RESULTS_FILE, ["model=mlp"])
    return directory


def test_best_prints_the_overrides_from_a_directory_or_a_storage(
    sweep_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for source in (str(sweep_dir), f"sqlite:///{sweep_dir / 'optuna.db'}"):
        assert cli.main(["best", source]) == 0
        out, err = capsys.readouterr()
        assert out == "model=mlp model.net.units=200\n" and "demo: trial 1, value 0.3" in err


def test_best_lists_a_pareto_set(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(
        study_name="front", storage=storage, directions=["maximize", "minimize"]
    )
    for units, values in ((50, (0.9, 1e5)), (100, (0.92, 3e5))):
        study.enqueue_trial({"model.net.units": units})
        trial = study.ask()
        trial.suggest_int("model.net.units", 25, 150, step=25)
        trial.set_user_attr(stored.OVERRIDES, [f"model.net.units={units}"])
        study.tell(trial, values)
    assert cli.main(["best", storage]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# Pareto set of 2 trials") and "model.net.units=100" in out


def test_best_refuses_a_missing_storage_without_creating_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "typo" / "optuna.db"
    assert "There is no study storage at" in refused(capsys, "best", f"sqlite:///{missing}")
    assert not missing.parent.exists()
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    optuna.create_study(study_name="real", storage=storage)
    stderr = refused(capsys, "best", storage, "--study", "nope")
    assert "holds no study 'nope'; it holds real" in stderr


def test_best_refuses_a_corrupt_results_file_or_a_wrong_study(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / report.RESULTS_FILE).write_text("study_name: s\nbest: [unclosed\n")
    assert "optimization_results.yaml cannot be read" in refused(capsys, "best", str(tmp_path))
    (tmp_path / report.RESULTS_FILE).write_text("study_name: s\n")
    assert "is study 's', not 't'" in refused(capsys, "best", str(tmp_path), "--study", "t")
    assert "is not a sweep directory" in refused(capsys, "best", str(tmp_path / "nowhere"))


def test_compare_tables_runs_and_names_a_missing_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "baseline" / "run"
    run.mkdir(parents=True)
    metrics = {"test/acc": 0.9, "val/acc_best": 0.91}
    record.write(
        run,
        {"metrics": metrics, "seed": 1, "optimized_metric": "val/acc_best", "duration_s": 10.0},
    )
    assert cli.main(["compare", str(run)]) == 0
    assert "| baseline | 1 | 0.9000 ± 0.0000 | 0.9100 ± 0.0000 | 10 s |" in capsys.readouterr().out
    assert "does not exist" in refused(capsys, "compare", str(tmp_path / "gone" / "run"))


@pytest.fixture
def no_global_hydra() -> None:
    """wandb-sweep initialises Hydra itself, as in a fresh process."""
    GlobalHydra.instance().clear()


def test_wandb_sweep_writes_the_committed_definition(
    no_global_hydra: None, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["wandb-sweep", "hparams_search=mlp_optuna", "--config-dir", str(ROOT / "configs")]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith("# W&B Sweeps definition, generated by: sweeplab wandb-sweep")
    committed = yaml.safe_load((ROOT / "sweeps" / "mlp_bayes.yaml").read_text())
    assert yaml.safe_load(out) == committed


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("+hydra.sweeper.layers.params.seed='choice(1,2)'", "one parent config node"),
        ("hparams_search=nope", "hparams_search"),
        ("objective=acc_vs_params", "W&B Sweeps optimise one metric"),
    ],
)
def test_wandb_sweep_refuses_what_it_cannot_express(
    no_global_hydra: None, capsys: pytest.CaptureFixture[str], override: str, message: str
) -> None:
    configs = ["--config-dir", str(ROOT / "configs")]
    assert message in refused(
        capsys, "wandb-sweep", "hparams_search=mlp_optuna", override, *configs
    )


def test_dashboard_refuses_a_missing_storage_without_creating_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "typo" / "optuna.db"
    assert "There is no study storage" in refused(capsys, "dashboard", f"sqlite:///{missing}")
    assert not missing.parent.exists()
    stderr = refused(capsys, "dashboard", str(tmp_path / "nowhere"))
    assert "neither a sweep directory" in stderr


def test_dashboard_port_in_use_is_one_paragraph(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    optuna.create_study(study_name="s", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        stderr = refused(capsys, "dashboard", str(tmp_path), "--port", str(port))
    assert f"127.0.0.1:{port}" in stderr and "--port" in stderr


def test_dashboard_serves_the_study_until_ctrl_c(
    sweep_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """In this process, on a free port: the study is in the dashboard's API, and Ctrl-C
    (a KeyboardInterrupt in the main thread) stops the server cleanly."""
    made: list[Any] = []
    ready = threading.Event()
    stock_make_server = dashboard.make_server

    def recording_make_server(*args: Any, **kwargs: Any) -> Any:
        made.append(stock_make_server(*args, **kwargs))
        ready.set()
        return made[-1]

    answers: list[Any] = []

    def browse_then_interrupt() -> None:
        if not ready.wait(60):
            return  # serve failed before it made a server: the main thread has its error
        try:
            url = f"http://127.0.0.1:{made[0].server_port}/api/studies"
            with urllib.request.urlopen(url, timeout=30) as response:
                answers.append(json.load(response))
        except Exception as error:  # reported by the main thread's assertions
            answers.append(error)
        finally:
            _thread.interrupt_main()  # Ctrl-C

    monkeypatch.setattr(dashboard, "make_server", recording_make_server)
    browser = threading.Thread(target=browse_then_interrupt, daemon=True)
    browser.start()
    assert cli.main(["dashboard", str(sweep_dir), "--port", "0"]) == 0
    browser.join(10)
    out = capsys.readouterr().out
    assert f"http://localhost:{made[0].server_port}/dashboard/" in out
    assert out.rstrip().endswith("Dashboard stopped.")
    [listed] = answers
    assert [s["study_name"] for s in listed["study_summaries"]] == ["demo"], listed


def test_dashboard_start_line_never_shows_a_password(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    class Server:  # serves nothing: Ctrl-C at once
        server_port = 8080

        def __enter__(self) -> Server:
            return self

        def __exit__(self, *exc: object) -> None:
            pass

        def serve_forever(self) -> None:
            raise KeyboardInterrupt

    monkeypatch.setattr(dashboard, "open_existing_storage", lambda source: InMemoryStorage())
    monkeypatch.setattr(dashboard, "make_server", lambda *args, **kwargs: Server())
    dashboard.serve("postgresql://bob:hunter2@db.example/optuna", port=0)
    out = capsys.readouterr().out
    assert "bob:***@db.example" in out and "hunter2" not in out


def rejected(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """The paragraph ``sweeplab argv...`` exits with for a malformed argument (status 2)."""
    with pytest.raises(SystemExit) as exited:
        cli.main(list(argv))
    assert exited.value.code == 2
    return capsys.readouterr().err


def snapshot(directory: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``directory`` with its size and modification time."""
    return {
        str(p.relative_to(directory)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(directory.rglob("*"))
    }


def one_paragraph(stderr: str) -> str:
    assert "Traceback" not in stderr and "\n\n" not in stderr.strip(), stderr
    return stderr


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["dashboard", ".", "--port", "70000"], "argument --port: 70000 is not a TCP port"),
        (["dashboard", ".", "--port", "-1"], "-1 is not a TCP port"),
        (["dashboard", ".", "--port", "http"], "http is not a TCP port"),
        (["fail-stale", ".", "--older-than", "-5"], "-5 is not a duration"),
        (["fail-stale", ".", "--older-than", "nan"], "nan is not a duration"),
        (["best"], "the following arguments are required: source"),
    ],
)
def test_a_malformed_argument_is_one_paragraph_with_status_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    stderr = one_paragraph(rejected(capsys, *argv))
    assert message in stderr and f"sweeplab {argv[0]} --help" in stderr


def test_what_an_argument_points_at_is_checked_without_writing_a_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An empty optuna.db, a file given for a directory, a missing path, an unknown URL
    scheme: one paragraph each (status 1), and the directory is left exactly as it was."""
    (tmp_path / "optuna.db").touch()
    (tmp_path / "notes.txt").write_text("not a run\n")
    before = snapshot(tmp_path)
    empty_db = f"sqlite:///{tmp_path / 'optuna.db'}"
    cases = [
        (["best", empty_db], "is an empty file, so it holds no study"),
        (["dashboard", str(tmp_path), "--port", "0"], "is an empty file"),
        (["fail-stale", str(tmp_path)], "is an empty file"),
        (["compare", str(tmp_path / "notes.txt")], "notes.txt is a file: sweeplab compare"),
        (["compare", str(tmp_path / "missing")], "missing does not exist"),
        (["best", str(tmp_path / "notes.txt")], "is not a sweep directory"),
        (["fail-stale", str(tmp_path / "notes.txt")], "neither a sweep directory"),
        (["best", "foo://db.example/optuna"], "Cannot open the study storage foo://"),
        (["dashboard", f"journal:{tmp_path / 'missing.log'}"], "There is no study storage"),
    ]
    for argv, message in cases:
        assert message in one_paragraph(refused(capsys, *argv)), argv
    assert snapshot(tmp_path) == before


def test_fail_stale_fails_and_requeues_old_running_trials_one_line_each(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"journal:{tmp_path / 'study.log'}"
    study = optuna.create_study(study_name="j", storage=open_storage(url))
    trial = study.ask()
    trial.suggest_float("x", 0.0, 1.0)
    trial.set_user_attr(stored.WORKER, "elsewhere.example:4242")  # another machine's worker
    assert cli.main(["fail-stale", url]) == 0  # its host's process table is out of sight
    assert capsys.readouterr().err == "Study j: no stale running trial.\n"
    assert cli.main(["fail-stale", url, "--study", "j", "--older-than", "0"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Trial 0 (worker elsewhere.example:4242) failed: running for ")
    assert out.endswith("more than --older-than 0; queued to run again.\n")
    states = [t.state for t in optuna.load_study(study_name="j", storage=open_storage(url)).trials]
    assert states == [TrialState.FAIL, TrialState.WAITING]
    assert "holds no study 'k'; it holds j" in refused(capsys, "fail-stale", url, "--study", "k")


def test_init_then_train_composes_the_starter_s_model_from_its_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from sweeplab import trust, user_repo

    monkeypatch.setenv(trust.TRUSTED_ENV, "")  # restored afterwards, as are the two below
    monkeypatch.setenv(user_repo.ROOT_ENV, str(tmp_path / "repo"))
    monkeypatch.setattr(sys, "path", list(sys.path))
    assert cli.main(["init", str(tmp_path / "repo")]) == 0
    assert "repo/mynet/net.py" in capsys.readouterr().out
    monkeypatch.chdir(tmp_path / "repo")
    assert cli.main(["train", "--cfg", "job", "model=mynet"]) == 0
    shown = yaml.safe_load(capsys.readouterr().out)
    assert shown["model"]["net"]["_target_"] == "mynet.net.SmallNet"
    assert shown["paths"]["root_dir"] == "${oc.env:SWEEPLAB_ROOT,.}"
    assert "mynet" in trust.trusted_targets()[-1]
    assert "already exists and is not an empty directory" in refused(capsys, "init", "../repo")
