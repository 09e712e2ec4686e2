"""Sweeper settings and storages are checked before the first trial, with one paragraph that
names the key; storage passwords are never written."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest

from sweeplab.errors import ConfigError
from sweeplab.outputs import writable_dir
from sweeplab.redaction import redact
from sweeplab.sweep.settings import Heartbeat, Slurm, SweepSettings
from sweeplab.sweep.storage import has_heartbeat, journal_path, open_storage
from sweeplab.tracking import flatten
from tests.services import PostgresServer

GOOD = dict(
    direction="min",
    storage="sqlite:///x.db",
    study_name="s",
    n_trials=20,
    n_jobs=1,
    max_failure_rate=0.25,
    workers=1,
    workers_per_gpu=1,
)


def test_good_settings_pass_and_directions_follow_monitor_mode() -> None:
    assert SweepSettings.from_kwargs(GOOD).directions == ("minimize",)
    assert SweepSettings.from_kwargs(GOOD | {"direction": "MAX"}).directions == ("maximize",)
    two = SweepSettings.from_kwargs(GOOD | {"direction": ["max", "minimize"]})
    assert two.directions == ("maximize", "minimize")
    assert two.heartbeat == Heartbeat() and two.cluster is None and two.params == {}


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("n_trials", 0, "`hydra.sweeper.n_trials`=0 is invalid"),
        ("workers", 0, "`hydra.sweeper.workers`=0 is invalid"),
        ("n_jobs", 0, "`hydra.sweeper.n_jobs`=0 is invalid"),
        ("workers_per_gpu", 1.5, "`hydra.sweeper.workers_per_gpu`=1.5 is invalid"),
        ("max_failure_rate", 1.5, "`hydra.sweeper.max_failure_rate`=1.5 is invalid"),
        ("max_failure_rate", -0.1, "from 0 (stop at the first failed trial) to 1"),
        ("direction", ["minimize", "up"], "or a list of them, one per objective"),
        ("direction", "up", "`hydra.sweeper.direction`='up' is invalid"),
        ("storage", "", "`hydra.sweeper.storage` is empty"),
    ],
)
def test_bad_settings_name_the_key(key: str, value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        SweepSettings.from_kwargs(GOOD | {key: value})


def test_a_direction_against_the_objective_is_refused() -> None:
    from omegaconf import OmegaConf

    from sweeplab.sweep.roles import _check_objectives

    loss = OmegaConf.create({"optimized_direction": "min", "optimized_metric": "val/loss_best"})
    assert _check_objectives(["minimize"], loss) == ["val/loss_best"]
    with pytest.raises(ConfigError, match="contradicts the objective: .*best minimized"):
        _check_objectives(["maximize"], loss)
    two = OmegaConf.create(
        {
            "optimized_direction": ["max", "min"],
            "optimized_metric": ["val/acc_best", "model/params"],
        }
    )
    assert _check_objectives(["maximize", "minimize"], two) == ["val/acc_best", "model/params"]
    with pytest.raises(ConfigError, match="contradicts the objective"):
        _check_objectives(["maximize"], two)


def test_heartbeat_settings_are_checked() -> None:
    beat = {"interval": 5, "grace_period": 20, "max_retry": 2}
    assert SweepSettings.from_kwargs(GOOD | {"heartbeat": beat}).heartbeat.grace_period == 20
    with pytest.raises(ConfigError, match="grace period longer than the interval"):
        SweepSettings.from_kwargs(GOOD | {"heartbeat": {"interval": 10, "grace_period": 10}})
    with pytest.raises(ConfigError, match="max_retry`=-1"):
        SweepSettings.from_kwargs(GOOD | {"heartbeat": {"max_retry": -1}})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"heartbeat": {"interval": "ten"}}, "`hydra.sweeper.heartbeat.interval`='ten' is invalid"),
        ({"heartbeat": 5}, "`hydra.sweeper.heartbeat`=5 is invalid: give its settings as key"),
        ({"cluster": {"mem_gb": "lots"}}, "`hydra.sweeper.cluster.mem_gb`='lots' is invalid"),
        (
            {"cluster": {"timeout_min": 1, "signal_delay_s": 60}},
            "`hydra.sweeper.cluster.signal_delay_s`=60 is invalid: it must be 0 or more and "
            "shorter than timeout_min=1 minutes",
        ),
        (
            {"cluster": {"max_num_timeout": -1}},
            "`hydra.sweeper.cluster.max_num_timeout`=-1 is invalid: use 0 or more",
        ),
        ({"params": [1]}, "`hydra.sweeper.params`=[1] is invalid: use a mapping"),
        ({"n_trials": True}, "`hydra.sweeper.n_trials`=True is invalid: use an integer"),
        ({"study_name": None}, "`hydra.sweeper.study_name`=None is invalid: use a string"),
    ],
)
def test_settings_of_the_wrong_type_are_named(change: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        SweepSettings.from_kwargs(GOOD | change)


def test_a_missing_setting_is_named_and_an_empty_cluster_takes_the_defaults() -> None:
    without = {k: v for k, v in GOOD.items() if k != "study_name"}
    with pytest.raises(ConfigError, match="`hydra.sweeper` lacks study_name"):
        SweepSettings.from_kwargs(without)
    assert SweepSettings.from_kwargs(GOOD | {"cluster": {}}).cluster == Slurm()


def test_unknown_settings_are_named() -> None:
    with pytest.raises(ConfigError, match="`hydra.sweeper` has no setting n_trails"):
        SweepSettings.from_kwargs(GOOD | {"n_trails": 5})
    with pytest.raises(ConfigError, match="`hydra.sweeper.cluster` has no setting gpus"):
        SweepSettings.from_kwargs(GOOD | {"cluster": {"gpus": 2}})
    slurm = SweepSettings.from_kwargs(GOOD | {"cluster": {"partition": "gpu"}}).cluster
    assert slurm == Slurm(partition="gpu")


def test_an_unwritable_sweep_dir_is_refused(tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match="is not writable.*paths.log_dir"):
        writable_dir(blocker / "sweep")
    assert writable_dir(tmp_path / "ok") == tmp_path / "ok"


def test_a_missing_database_driver_says_what_to_install() -> None:
    with pytest.raises(ConfigError, match=r"pip install mysqlclient") as error:
        open_storage("mysql://bob:hunter2@db.example/optuna")
    assert "hunter2" not in str(error.value) and "bob:***@" in str(error.value)


def test_sqlite_storages_have_heartbeats_and_journal_files_do_not(tmp_path: Path) -> None:
    assert has_heartbeat(open_storage(f"sqlite:///{tmp_path / 'a.db'}", Heartbeat()))
    assert not has_heartbeat(open_storage(f"sqlite:///{tmp_path / 'b.db'}"))
    journal = f"journal:{tmp_path / 'nested' / 'study.log'}"
    optuna.create_study(study_name="j", storage=open_storage(journal)).optimize(
        lambda t: t.suggest_float("x", 0, 1), n_trials=2
    )
    again = optuna.load_study(study_name="j", storage=open_storage(journal))
    assert len(again.trials) == 2 and not has_heartbeat(open_storage(journal))
    assert journal_path("journal:///abs/x.log") == Path("/abs/x.log")


def test_passwords_are_redacted_in_text_and_in_the_wandb_config() -> None:
    url = "postgresql+psycopg://bob:s3:cr%40et@db.example:5432/optuna"
    assert redact(f"storage {url} failed") == (
        "storage postgresql+psycopg://bob:***@db.example:5432/optuna failed"
    )
    assert redact("sqlite:///logs/optuna.db") == "sqlite:///logs/optuna.db"
    flat = flatten({"sweep_trial": {"storage": url, "n": 3}})
    assert flat == {
        "sweep_trial.storage": "postgresql+psycopg://bob:***@db.example:5432/optuna",
        "sweep_trial.n": 3,
    }


@pytest.mark.slow  # a PostgreSQL server and six processes
def test_workers_starting_together_on_a_new_database_all_connect(postgres: PostgresServer) -> None:
    # They race to create Optuna's tables; the losers must retry, not fail.
    url = postgres.new_database("race")
    code = f"from sweeplab.sweep.storage import open_storage; open_storage({url!r})"
    starts = [
        subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True)
        for _ in range(6)
    ]
    assert [(p.wait(timeout=120), p.stderr.read()[-500:]) for p in starts] == [(0, "")] * 6


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"reduction_factor": 1}, "`reduction_factor` is 1, but must be `reduction_factor >= 2`"),
        ({"min_resource": 0}, "`min_resource` is 0"),
    ],
)
def test_a_hyperband_setting_its_brackets_refuse_is_caught_before_the_first_trial(
    setting: dict, message: str
) -> None:
    """Optuna's HyperbandPruner accepts these and fails at the first report of a trial."""
    from omegaconf import OmegaConf

    from sweeplab.sweep.algorithms import build_pruner

    node = OmegaConf.create({"_target_": "optuna.pruners.HyperbandPruner", "max_resource": 4})
    assert isinstance(build_pruner(node), optuna.pruners.HyperbandPruner)
    with pytest.raises(ConfigError, match=f"hydra.sweeper.pruner`: .*{message}"):
        build_pruner(OmegaConf.merge(node, setting))


@pytest.fixture
def machine(monkeypatch: pytest.MonkeyPatch) -> Callable[[int, list[str]], None]:
    """Pretend this is the sweep command on a machine with ``cores`` cores and ``gpus``."""
    monkeypatch.delenv("SWEEPLAB_WORKER", raising=False)

    def have(cores: int, gpus: list[str]) -> None:
        monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(cores)), raising=False)
        monkeypatch.setattr("os.cpu_count", lambda: cores)
        monkeypatch.setattr("sweeplab.sweep.workers.visible_gpus", lambda: gpus)

    return have


def test_local_workers_are_bounded_by_the_machine(
    machine: Callable[[int, list[str]], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    machine(2, [])
    assert SweepSettings.from_kwargs(GOOD | {"workers": 2}).workers == 2
    with pytest.raises(ConfigError, match=r"`hydra.sweeper.workers`=10000 is more .* 2 CPU core"):
        SweepSettings.from_kwargs(GOOD | {"workers": 10000})
    forced = SweepSettings.from_kwargs(GOOD | {"workers": 3, "force_workers": True})
    assert forced.workers == 3
    assert SweepSettings.from_kwargs(GOOD | {"workers": 64, "cluster": {}}).workers == 64
    machine(2, ["0", "1"])
    assert SweepSettings.from_kwargs(GOOD | {"workers": 4, "workers_per_gpu": 2}).workers == 4
    with pytest.raises(ConfigError, match=r"2 GPU\(s\) × hydra.sweeper.workers_per_gpu=2"):
        SweepSettings.from_kwargs(GOOD | {"workers": 5, "workers_per_gpu": 2})
    monkeypatch.setenv("SWEEPLAB_WORKER", "3")  # a worker sees only its own GPU: not checked
    assert SweepSettings.from_kwargs(GOOD | {"workers": 5, "workers_per_gpu": 2}).workers == 5
    with pytest.raises(ConfigError, match=r"`hydra.sweeper.force_workers`='yes' is invalid: use"):
        SweepSettings.from_kwargs(GOOD | {"force_workers": "yes"})
