"""Seeding a study: enqueued override sets run first, once; a warm start copies an earlier
study's fitting trials, once, without counting them towards n_trials."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import pytest
import yaml
from hydra.core.utils import JobReturn, JobStatus
from optuna.trial import TrialState

from sweeplab.errors import ConfigError
from sweeplab.sweep import queries, roles, warm_start
from sweeplab.sweep import study as stored
from sweeplab.sweep.enqueue import enqueued_params
from sweeplab.sweep.report import RESULTS_FILE
from tests.conftest import load_study, readme_commands, sweep
from tests.test_roles import _open, _sampled_trials

pytestmark = pytest.mark.usefixtures("data_in_env")

# the README's enqueue command
[SETS] = [o for c in readme_commands("### Warm starts") for o in c if "sweeper.enqueue=" in o]


def _seeded(tmp_path: Path, *overrides: str) -> roles.Sweep:
    """Open a sweep and seed it, as the sweep command does before its first trial."""
    opened = _open(tmp_path, *overrides, check_values=False)
    warm_start.seed(opened.study, opened.settings, opened.space)
    return opened


def test_enqueued_sets_are_the_first_trials_and_are_never_enqueued_twice(tmp_path: Path) -> None:
    _seeded(tmp_path, SETS)
    again = _seeded(tmp_path, SETS)  # a re-run of the same command
    assert queries.count(again.study, TrialState.WAITING) == 2
    [(first, overrides), (second, _), _] = _sampled_trials(again, 3)
    assert first["model.net.units"] == 100 and first["model.optimizer.lr"] == 0.001
    assert "model.net.units=100" in overrides
    assert second["model/optimizer"] == "sgd" and second["num_dense_layers"] == 2
    assert [second["model.net.hidden_units[0]"], second["model.net.hidden_units[1]"]] == [75, 100]
    warm_start.seed(again.study, again.settings, again.space)  # after they ran: not again
    assert queries.count(again.study, TrialState.WAITING) == 0


@pytest.mark.parametrize(
    ("enqueued", "named"),
    [
        ("[['model.net.unit=100']]", "sets `model.net.unit`, which is not in the sweep's search"),
        ("[['model.net.units=125']]", "sets `model.net.units=125`, outside the search space"),
        ("[['model.net.units=choice(100,150)']]", "is not one value"),
        ("[['model.net.hidden_units=[75,100]','model.net.hidden_dropout=[0.1]']]", "per-layer"),
        ("[model.net.units]", "is not a list of key=value overrides"),
    ],
)
def test_a_bad_enqueued_set_is_one_paragraph_before_the_study(
    tmp_path: Path, enqueued: str, named: str
) -> None:
    with pytest.raises(ConfigError, match="hydra.sweeper.enqueue\\[0\\]") as refused:
        _open(tmp_path, f"hydra.sweeper.enqueue={enqueued}", check_values=False)
    assert named in str(refused.value)
    assert not (tmp_path / "sweep").exists()


def test_an_enqueued_set_fixes_a_conditional_key_under_the_option_it_chooses(
    tmp_path: Path,
) -> None:
    arch = _open(tmp_path, "hparams_search=arch_optuna", "name=arch", check_values=False)
    [params] = enqueued_params([["model=cnn", "model.net.filters=[32,64]"]], arch.space)
    assert params == {
        "model": "cnn",
        "cnn:num_blocks": 2,
        "cnn:model.net.filters[0]": 32,
        "cnn:model.net.filters[1]": 64,
    }
    with pytest.raises(ConfigError, match="only the space of model=cnn searches"):
        enqueued_params([["model.net.filters=[32]"]], arch.space)


def _source(tmp_path: Path) -> Path:
    """A finished sweep of three trials (units 100, 300, 150), with its results file."""
    enqueued = "[['model.net.units=100'],['model.net.units=300'],['model.net.units=150']]"
    first = _seeded(tmp_path / "a", f"hydra.sweeper.enqueue={enqueued}")
    _sampled_trials(first, 3)  # each told 0.5
    results = {"study_name": first.study.study_name, "storage": first.settings.storage}
    (first.sweep_dir / RESULTS_FILE).write_text(yaml.safe_dump(results))
    return first.sweep_dir


class Launcher:
    """Runs no training: every trial's job returns 0.25."""

    def __init__(self) -> None:
        self.trials = 0

    def __call__(self, batch: Sequence[Sequence[str]], first: int) -> list[JobReturn]:
        self.trials += len(batch)
        return [JobReturn(status=JobStatus.COMPLETED, _return_value=0.25) for _ in batch]


def test_a_warm_start_copies_fitting_trials_once_outside_the_budget(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = _source(tmp_path)
    narrower = ("name=mlp_v2", f"hydra.sweeper.warm_start={source}", "hydra.sweeper.n_trials=2")
    units = "model.net.units=range(50, 200, step=50)"  # 300 does not fit
    with caplog.at_level("INFO"):
        opened = _open(tmp_path / "b", *narrower, arguments=(units,), check_values=False)
        warm_start.seed(opened.study, opened.settings, opened.space)
    assert "2 trial(s) copied, 1 skipped" in caplog.text
    copies = opened.study.trials
    assert [t.params["model.net.units"] for t in copies] == [100, 150]
    assert all(t.user_attrs[stored.WARM_START].startswith("mlp_optuna trial ") for t in copies)
    assert queries.count_finished(opened.study) == 0 and not any(map(queries.ran, copies))
    warm_start.seed(opened.study, opened.settings, opened.space)  # a re-run copies nothing
    assert len(opened.study.trials) == 2
    launch = Launcher()
    opened.worker(launch).run()
    assert launch.trials == 2 and queries.count_finished(opened.study) == 2
    assert len(opened.study.trials) == 4  # the copies and the two trials run here
    maximised = ("name=mlp_v3", "objective=val_acc", f"hydra.sweeper.warm_start={source}")
    with pytest.raises(ConfigError, match="would rank this study's trials wrongly"):
        _open(tmp_path / "c", *maximised, check_values=False)
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize(("content", "reason"), [(None, "does not exist"), ("[", "cannot be read")])
def test_a_warm_start_that_is_not_a_sweep_directory_is_one_paragraph(
    tmp_path: Path, content: str | None, reason: str
) -> None:
    given = tmp_path / "earlier"
    if content is not None:
        given.mkdir()
        (given / RESULTS_FILE).write_text(content)
    with pytest.raises(ConfigError, match="is not a sweep directory") as refused:
        _open(tmp_path, f"hydra.sweeper.warm_start={given}", check_values=False)
    assert reason in str(refused.value) and "\n" not in str(refused.value)
    assert not (tmp_path / "sweep").exists()


@pytest.mark.slow
def test_a_second_sweep_warm_starts_from_the_first_s_directory(
    fashion_dir: Path, tmp_path: Path, isolated_env: dict[str, str]
) -> None:
    tiny = ("hparams_search=mlp_optuna", "trainer.max_epochs=1", "data.train_subset=200")
    tiny += ("logger=none", "hydra.sweeper.n_trials=2")
    first = sweep(fashion_dir, tmp_path, isolated_env, *tiny)
    assert first.returncode == 0, first.stderr[-3000:]
    source = tmp_path / "sweeps" / "mlp_optuna"
    second = sweep(
        fashion_dir,
        tmp_path,
        isolated_env,
        *tiny,
        "name=mlp_optuna_v2",
        f"hydra.sweeper.warm_start={source}",
    )
    assert second.returncode == 0, second.stderr[-3000:]
    assert "2 trial(s) copied, 0 skipped" in second.stdout + second.stderr
    sweep_dir = tmp_path / "sweeps" / "mlp_optuna_v2"
    study = load_study(sweep_dir)
    assert queries.count_finished(study) == 2 and len(study.trials) == 4
    trained = sorted(p.name for p in sweep_dir.glob("trial_*") if (p / "metrics.json").is_file())
    ran = [f"trial_{t.number}" for t in study.trials if queries.ran(t)]
    assert trained == ran and len(ran) == 2  # the copies were not retrained, nor repeated
    with (sweep_dir / "trials.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [bool(row["warm_start"]) for row in rows] == [True, True, False, False]
    report = (sweep_dir / "report.md").read_text()
    assert "4 trials" in report and "2 copied from another study" in report
    assert "Validation epochs run in all: 2." in report  # the copies' epochs ran elsewhere
