from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from sweeplab import record
from sweeplab.errors import ConfigError
from sweeplab.seeds import comparison_table, summarise
from sweeplab.sweep import report
from sweeplab.sweep import study as stored
from sweeplab.sweep.best import expand_best_of, load_best
from sweeplab.sweep.progress import format_duration


@pytest.fixture
def sweep_dir(tmp_path: Path) -> Path:
    """A finished study written to disk the way the sweeper leaves it."""
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(study_name="demo", storage=storage)
    study.set_user_attr(stored.BASE_OVERRIDES, ["model=mlp"])
    for value, units in ((0.5, 100), (0.3, 200), (float("nan"), 300)):
        study.enqueue_trial({"model.net.units": units, "model.net.hidden_units[0]": 50})
        trial = study.ask()
        trial.suggest_int("model.net.units", 50, 350, step=50)
        trial.suggest_int("model.net.hidden_units[0]", 50, 100, step=25)
        trial.set_user_attr(
            stored.OVERRIDES, [f"model.net.units={units}", "model.net.hidden_units=[50]"]
        )
        if value != value:  # NaN: a failed trial with its error
            trial.set_user_attr(stored.ERROR, "TrainingDiverged: boom")
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        else:
            trial.report(value, 0)
            study.tell(trial, value)
    report.write_all(study, tmp_path)
    return tmp_path


def test_results_files(sweep_dir: Path) -> None:
    text = (sweep_dir / report.REPORT_FILE).read_text()
    assert "## Best: trial 1, value 0.3000" in text and "TrainingDiverged: boom" in text
    rows = (sweep_dir / report.TRIALS_FILE).read_text().splitlines()
    assert rows[0].startswith("number,state,value,epochs,duration_s,model.net.units")
    assert rows[3].startswith("2,FAIL,,0,")


def test_load_best_from_directory_and_storage(sweep_dir: Path) -> None:
    expected = ["model=mlp", "model.net.units=200", "model.net.hidden_units=[50]"]
    [from_dir] = load_best(str(sweep_dir))
    assert from_dir.overrides == expected and from_dir.number == 1 and from_dir.values == [0.3]
    [from_storage] = load_best(f"sqlite:///{sweep_dir / 'optuna.db'}")
    assert from_storage.overrides == expected
    assert from_dir.command_line() == "model=mlp model.net.units=200 'model.net.hidden_units=[50]'"


def test_load_best_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is not a sweep directory"):
        load_best(str(tmp_path))


def test_expand_best_of_lets_the_user_win(sweep_dir: Path) -> None:
    argv = [f"best_of={sweep_dir}", "model.net.units=64", "trainer.max_epochs=50"]
    assert expand_best_of(argv) == [
        argv[0],
        "name=demo_best",
        "model=mlp",
        "model.net.hidden_units=[50]",
        "model.net.units=64",
        "trainer.max_epochs=50",
    ]
    assert expand_best_of(["seed=1"]) == ["seed=1"]


def test_seed_summary_and_comparison(tmp_path: Path) -> None:
    runs = [
        {
            "metrics": {"test/acc": acc, "val/acc_best": acc + 0.01},
            "seed": seed,
            "optimized_metric": "val/acc_best",
            "duration_s": 10.0,
        }
        for seed, acc in ((1, 0.90), (2, 0.92))
    ]
    summary = summarise("tuned", runs)
    assert summary["metrics"]["test/acc"]["mean"] == pytest.approx(0.91)
    assert summary["metrics"]["test/acc"]["std"] == pytest.approx(0.0141421, rel=1e-4)
    single = tmp_path / "baseline" / "run"
    single.mkdir(parents=True)
    record.write(single, runs[0])
    table = comparison_table([single])
    assert "| baseline | 1 | 0.9000 ± 0.0000 | 0.9100 ± 0.0000 | 10 s |" in table


def test_format_duration() -> None:
    assert format_duration(65) == "1m05s" and format_duration(3725) == "1h02m05s"


def test_a_repeated_configuration_reuses_the_earlier_value(tmp_path: Path) -> None:
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'db'}")
    for units in (50, 50, 75):
        study.enqueue_trial({"units": units})
    first, repeat, other = (study.ask() for _ in range(3))
    for trial in (first, repeat, other):
        trial.suggest_int("units", 50, 100, step=25)
    study.tell(first, 0.25)
    assert stored.reuse_twin(study, repeat) and not stored.reuse_twin(study, other)
    reused = study.trials[repeat.number]
    assert reused.value == 0.25 and reused.user_attrs[stored.DUPLICATE_OF] == first.number
    assert study.trials[other.number].state == optuna.trial.TrialState.RUNNING


def test_plots_show_only_varied_parameters_with_their_full_names(tmp_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from optuna.visualization.matplotlib import plot_parallel_coordinate

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(4):
        trial = study.ask()
        trial.suggest_float("model.net.hidden_dropout_rate_of_layer[0]", 0, 1)
        trial.suggest_categorical("constant", ["same"])
        study.tell(trial, trial.params["model.net.hidden_dropout_rate_of_layer[0]"])
    varied = report._varied_params(study.trials)
    assert varied == ["model.net.hidden_dropout_rate_of_layer[0]"]
    ax = plot_parallel_coordinate(study, params=varied)
    report._untruncate(ax, varied)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["Objective Value", *varied]
    assert set(report.write_plots(study, tmp_path)) == {
        "optimization_history.png",
        "param_importances.png",
        "parallel_coordinates.png",
    }


@pytest.fixture
def pareto_dir(tmp_path: Path) -> Path:
    """A finished two-objective study (accuracy up, parameters down), written to disk."""
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(
        study_name="front", storage=storage, directions=["maximize", "minimize"]
    )
    study.set_metric_names(["val/acc_best", "model/params"])
    study.set_user_attr(stored.BASE_OVERRIDES, ["model=cnn"])
    # (accuracy, parameters): trials 0, 2 and 3 are non-dominated, 1 is dominated by 0
    for units, values in (
        (50, (0.90, 1e5)),
        (75, (0.89, 2e5)),
        (100, (0.92, 3e5)),
        (25, (0.80, 5e4)),
    ):
        study.enqueue_trial({"model.net.units": units})
        trial = study.ask()
        trial.suggest_int("model.net.units", 25, 150, step=25)
        trial.set_user_attr(stored.OVERRIDES, [f"model.net.units={units}"])
        study.tell(trial, values)
    report.write_all(study, tmp_path)
    return tmp_path


def test_a_pareto_set_is_written_and_retrained_by_number(pareto_dir: Path) -> None:
    from omegaconf import OmegaConf

    results = OmegaConf.load(pareto_dir / report.RESULTS_FILE)
    assert results.direction == ["maximize", "minimize"]
    assert results.objectives == ["val/acc_best", "model/params"]
    assert [s.number for s in results.solutions] == [0, 2, 3]
    assert results.solutions[1]["values"] == [0.92, 3e5]
    assert results.solutions[1].overrides == ["model=cnn", "model.net.units=100"]
    assert "best_value" not in results
    assert (pareto_dir / "pareto_front.png").stat().st_size > 10_000
    text = (pareto_dir / report.REPORT_FILE).read_text()
    assert "## Pareto set: 3 trial(s)" in text and "trial=<number>" in text
    header = (pareto_dir / report.TRIALS_FILE).read_text().splitlines()[0]
    assert header.startswith("number,state,val/acc_best,model/params,epochs")

    assert [b.number for b in load_best(str(pareto_dir))] == [0, 2, 3]
    assert [b.number for b in load_best(f"sqlite:///{pareto_dir / 'optuna.db'}")] == [0, 2, 3]
    argv = expand_best_of([f"best_of={pareto_dir}", "trial=2", "trainer.max_epochs=5"])
    assert argv == [
        f"best_of={pareto_dir}",
        "name=front_best",
        "model=cnn",
        "model.net.units=100",
        "trainer.max_epochs=5",
    ]
    with pytest.raises(ConfigError, match="Pareto set holds trials 0, 2, 3"):
        expand_best_of([f"best_of={pareto_dir}"])
    with pytest.raises(ConfigError, match="trial=1 is not a trial to retrain"):
        expand_best_of([f"best_of={pareto_dir}", "trial=1"])
