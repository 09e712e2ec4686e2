"""What sweeplab needs beyond its dependencies' released public APIs (sweeplab/compat/): these
tests fail loudly when an installed Optuna or Hydra changes it."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from sweeplab.compat import hydra as hydra_compat
from sweeplab.compat.optuna import experimental, trial_by_number, trial_id


def test_trial_ids_reach_the_same_trial_from_a_live_or_frozen_trial(tmp_path: Path) -> None:
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'study.db'}")
    first, second = study.ask(), study.ask()
    frozen = study.get_trials(deepcopy=False)
    assert [trial_id(first), trial_id(second)] == [trial_id(t) for t in frozen]
    assert trial_id(first) != trial_id(second)

    # a handle rebuilt from the number writes to that very trial (as the pruning callback does)
    handle = trial_by_number(study, second.number)
    handle.report(0.5, step=0)
    assert study.trials[second.number].intermediate_values == {0: 0.5}
    assert study.trials[first.number].intermediate_values == {}


def test_experimental_features_are_used_without_their_warning() -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with experimental():
            warnings.warn("x", optuna.exceptions.ExperimentalWarning, stacklevel=1)


def test_the_installed_hydra_has_the_pre_release_features_sweeplab_uses() -> None:
    missing = hydra_compat.missing_features()
    assert not missing, (
        f"The installed hydra-core lacks {', '.join(missing)}, which sweeplab uses from "
        "1.4.0rc3 (see sweeplab/compat/hydra.py): install hydra-core==1.4.0rc3, or port "
        "sweeplab.compat.hydra to this Hydra."
    )


def test_the_execution_whitelist_refuses_an_untrusted_target() -> None:
    from omegaconf import OmegaConf

    node = OmegaConf.create({"_target_": "builtins.print"})
    with pytest.raises(Exception, match="builtins.print"):
        hydra_compat.instantiate(node, ["optuna.pruners.*"])
    pruner = {"_target_": "optuna.pruners.NopPruner"}
    assert isinstance(
        hydra_compat.instantiate(pruner, ["optuna.pruners.*"]), optuna.pruners.NopPruner
    )


def test_hydra_discovers_the_sweeper_through_its_entry_point_without_heavy_imports() -> None:
    """Hydra imports every discovered plugin at start-up: the plugin must import nothing heavy
    (run in a fresh interpreter, where nothing is imported yet)."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from hydra.core.plugins import Plugins\n"
        "from hydra.plugins.sweeper import Sweeper\n"
        "names = [p.__name__ for p in Plugins.instance().discover(Sweeper)]\n"
        "heavy = ('torch', 'pytorch_lightning', 'wandb', 'matplotlib', 'optuna')\n"
        "print(names, sorted(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "SweeplabOptunaSweeper" in out.stdout and out.stdout.strip().endswith("[]"), out.stdout


@pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning")
def test_every_database_call_of_a_study_waits_for_a_lost_connection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every other connection attempt fails, as while a server restarts: asks, reports,
    tells, heartbeats, the stale check and the reads all get through (their retries wrap
    the private RDBStorage methods Optuna's cache calls; a renamed one would fail here)."""
    import sqlite3

    import sqlalchemy
    from optuna.storages import fail_stale_trials
    from optuna.trial import TrialState

    from sweeplab.sweep import reconnect

    monkeypatch.setattr(reconnect, "FIRST_PAUSE_S", 0.001)
    with experimental():
        storage = reconnect.ReconnectingRDBStorage(
            f"sqlite:///{tmp_path / 'study.db'}",
            engine_kwargs={"poolclass": sqlalchemy.pool.NullPool},  # a connection per call
            heartbeat_interval=1,
        )
    attempts = []

    @sqlalchemy.event.listens_for(storage.engine, "do_connect")
    def flaky(*_: object) -> None:
        attempts.append(1)
        if len(attempts) % 2:
            raise sqlite3.OperationalError("connection refused (the server restarts)")

    study = optuna.create_study(study_name="s", storage=storage)
    for k in range(3):
        trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
        storage.record_heartbeat(trial_id(trial))
        trial.report(0.5, step=0)
        trial.set_user_attr("k", k)
        with experimental():
            fail_stale_trials(study)
        study.tell(trial, trial.params["x"])
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 3
    assert study.best_trial.user_attrs["k"] in (0, 1, 2)
    assert len(attempts) > 20  # the failures did happen
