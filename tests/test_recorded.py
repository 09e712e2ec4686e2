"""Overrides read back from a sweep directory or a study run only if the study wrote them."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import yaml
from optuna.distributions import CategoricalDistribution, IntDistribution

from sweeplab.errors import ConfigError
from sweeplab.sweep import report
from sweeplab.sweep import study as stored
from sweeplab.sweep.best import expand_best_of, load_best
from sweeplab.sweep.identity import StudyIdentity
from sweeplab.sweep.recorded import check_plain
from tests.conftest import ROOT, run_entry

BASE = ["model=mlp", "objective=val_loss", "trainer.max_epochs=1"]
SPACE = {
    "model.net.units": IntDistribution(50, 350, step=50),
    "model/optimizer": CategoricalDistribution(["adam", "sgd"]),
    "model.net.hidden_units[i]": IntDistribution(50, 100, step=25),
}
PARAMS = {"model.net.units": 100, "model/optimizer": "sgd", "model.net.hidden_units[0]": 75}
SAMPLED = ["model.net.units=100", "model/optimizer=sgd", "model.net.hidden_units=[75]"]
OWNED = "+callbacks.x._target_=subprocess.run"  # would run callbacks.x.args


def _sweep_dir(tmp_path: Path) -> Path:
    """A finished one-trial study and the results file its sweep writes."""
    sweep_dir = tmp_path / "s"
    sweep_dir.mkdir()
    storage = f"sqlite:///{sweep_dir / 'optuna.db'}"
    study = optuna.create_study(study_name="s", storage=storage)
    StudyIdentity(["minimize"], ["val/loss_best"], BASE, SPACE).record(study, [])
    trial = optuna.trial.create_trial(
        params=PARAMS,
        distributions={
            "model.net.units": SPACE["model.net.units"],
            "model/optimizer": SPACE["model/optimizer"],
            "model.net.hidden_units[0]": SPACE["model.net.hidden_units[i]"],
        },
        value=0.5,
        user_attrs={stored.OVERRIDES: SAMPLED},
    )
    study.add_trial(trial)
    report.write_results(
        study, study.trials, study.best_trial, sweep_dir / report.RESULTS_FILE, BASE
    )
    return sweep_dir


def _edit_results(sweep_dir: Path, **changes: object) -> None:
    path = sweep_dir / report.RESULTS_FILE
    results = yaml.safe_load(path.read_text())
    for key, value in changes.items():
        results[key] = value
    path.write_text(yaml.safe_dump(results))


def test_a_sweep_directory_and_its_study_give_the_overrides_the_sweep_wrote(
    tmp_path: Path,
) -> None:
    sweep_dir = _sweep_dir(tmp_path)
    [from_file] = load_best(str(sweep_dir))
    [from_storage] = load_best(f"sqlite:///{sweep_dir / 'optuna.db'}")
    assert from_file.overrides == from_storage.overrides == [*BASE, *SAMPLED]
    argv = expand_best_of([f"best_of={sweep_dir}", "trainer.max_epochs=2"])
    assert "model.net.units=100" in argv and "trainer.max_epochs=1" not in argv


@pytest.mark.parametrize(
    ("best_overrides", "why"),
    [
        ([*BASE, *SAMPLED, OWNED, "+callbacks.x.args=[touch,owned.txt]"], "_target_"),
        ([*BASE, "model.net.units=${oc.env:HOME}"], "interpolates"),
        ([*BASE, "hydra/launcher=joblib"], "sets Hydra itself"),
        ([*BASE, "trainer.max_epochs=100000"], "neither a base override"),
        ([*BASE, "model.net.units=200", "model/optimizer=sgd"], "neither a base override"),
    ],
)
def test_overrides_the_sweep_did_not_write_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, best_overrides: list[str], why: str
) -> None:
    sweep_dir = _sweep_dir(tmp_path)
    _edit_results(sweep_dir, best_overrides=best_overrides)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=why):
        expand_best_of([f"best_of={sweep_dir}"])
    assert not (tmp_path / "owned.txt").exists()


def test_a_parameter_outside_the_recorded_space_is_refused(tmp_path: Path) -> None:
    sweep_dir = _sweep_dir(tmp_path)
    overrides = [*BASE, "model.net.units=5000", *SAMPLED[1:]]
    _edit_results(
        sweep_dir, best_overrides=overrides, best_params={**PARAMS, "model.net.units": 5000}
    )
    with pytest.raises(ConfigError, match="outside the study's search space"):
        load_best(str(sweep_dir))


def test_a_study_whose_stored_base_was_edited_is_refused(tmp_path: Path) -> None:
    sweep_dir = _sweep_dir(tmp_path)
    storage = f"sqlite:///{sweep_dir / 'optuna.db'}"
    study = optuna.load_study(study_name="s", storage=storage)
    study.set_user_attr(stored.BASE_OVERRIDES, [*BASE, OWNED])
    with pytest.raises(ConfigError, match="_target_"):
        load_best(storage)


@pytest.mark.slow  # train.py as a process
def test_a_w_and_b_sweep_cannot_hand_train_py_a_target(
    tmp_path: Path, isolated_env: dict[str, str]
) -> None:
    env = {**isolated_env, "WANDB_SWEEP_ID": "abc123"}
    result = run_entry(
        "train.py", OWNED, "++callbacks.x.args=[touch,owned.txt]", env=env, log_dir=tmp_path
    )
    assert result.returncode == 1 and "W&B sweep's arguments names a `_target_`" in result.stderr
    assert not (tmp_path / "owned.txt").exists() and not (ROOT / "owned.txt").exists()


def test_a_w_and_b_sweep_may_pass_a_group_option_with_a_trusted_target() -> None:
    from sweeplab.trust import is_trusted, trusted_targets

    allowed = trusted_targets()
    option = "++model.optimizer={_target_: torch.optim.SGD, _partial_: true, momentum: 0.9}"
    check_plain([option], "the W&B sweep's arguments", trusted=lambda t: is_trusted(t, allowed))
    for bad in (OWNED, "++model.optimizer={_target_: os.system}", "++model.net.units=${oc.env:X}"):
        with pytest.raises(ConfigError):
            check_plain(
                [bad], "the W&B sweep's arguments", trusted=lambda t: is_trusted(t, allowed)
            )
