"""The sweep's set-up, in process: everything is checked before anything is written."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from sweeplab.errors import ConfigError, DataError
from sweeplab.sweep import queries, report, roles
from sweeplab.sweep.best import expand_best_of, load_best
from sweeplab.sweep.settings import SweepSettings
from sweeplab.sweep.wandb_study import log_study
from tests.conftest import ROOT, inspect_wandb_run

pytestmark = pytest.mark.usefixtures("data_in_env")

MLP_SEARCH = "hparams_search=mlp_optuna"


def _open(
    tmp_path: Path, *overrides: str, arguments: tuple[str, ...] = (), check_values: bool = True
) -> roles.Sweep:
    """Open the sweep of ``hparams_search=mlp_optuna`` (or of the search ``overrides`` name),
    as the sweeper does; ``arguments`` are the command's sweep overrides, which Hydra hands
    the sweeper rather than composing them; ``check_values=False`` skips trying the space's
    values (as a worker does)."""
    GlobalHydra.instance().clear()
    search = [] if any(o.startswith("hparams_search=") for o in overrides) else [MLP_SEARCH]
    fixed = [*search, f"hydra.sweep.dir={tmp_path / 'sweep'}", *overrides]
    with initialize_config_dir(str(ROOT / "configs")):
        cfg = compose("train", overrides=fixed, return_hydra_config=True)
        kwargs = {k: v for k, v in cfg.hydra.sweeper.items() if k != "_target_"}
        loader = GlobalHydra.instance().config_loader()
        return roles.open_sweep(
            SweepSettings.from_kwargs(kwargs),
            cfg,
            list(arguments),
            lambda extra: compose("train", overrides=[*fixed, *extra]),
            lambda key: bool(loader.get_group_options(key)),
            check_values=check_values,
        )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["hydra/sweeper/pruner=hyperband", "hydra.sweeper.pruner.reduction_factor=1"], "1"),
        (["objective=acc_vs_params", "hydra/sweeper/pruner=median"], "cannot prune"),
        (["objective=acc_vs_params", "hydra/sweeper/sampler=cmaes"], "CMA-ES"),
    ],
)
def test_a_bad_setting_leaves_no_sweep_directory(
    tmp_path: Path, overrides: list[str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        _open(tmp_path, *overrides)
    assert not (tmp_path / "sweep").exists()


def test_a_search_value_the_model_refuses_leaves_no_sweep_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="units=-5"):
        _open(tmp_path, arguments=("model.net.units=choice(50, -5)",))
    assert not (tmp_path / "sweep").exists()


def test_a_good_sweep_opens_its_study_with_the_configured_parts(tmp_path: Path) -> None:
    sweep = _open(tmp_path, "hydra/sweeper/pruner=median")
    assert type(sweep.study.pruner).__name__ == "MedianPruner"
    assert type(sweep.study.sampler).__name__ == "TPESampler"
    assert sweep.budget.n_trials == 20 and (tmp_path / "sweep" / "optuna.db").is_file()
    assert "model.net.units" in sweep.space.params and not sweep.space.groups - {"model/optimizer"}
    unpruned = _open(tmp_path / "b")
    assert type(unpruned.study.pruner).__name__ == "NopPruner"  # not Optuna's default Median


@pytest.mark.parametrize("name", ["os.system", "builtins.print"])
def test_a_custom_search_space_goes_through_the_trust_check(tmp_path: Path, name: str) -> None:
    with pytest.raises(ConfigError, match=f"custom_search_space`='{name}' is not trusted"):
        _open(tmp_path, f"hydra.sweeper.custom_search_space={name}")
    assert not (tmp_path / "sweep").exists()


def _stored(sweep: roles.Sweep) -> dict:
    return sweep.study.user_attrs


def test_a_resumed_study_keeps_what_it_is(tmp_path: Path) -> None:
    first = _stored(_open(tmp_path, check_values=False))
    assert _stored(_open(tmp_path, check_values=False)) == first  # resumed, nothing rewritten
    assert "model=mlp" in first["base_overrides"]
    assert "model.net.units" in first["search_spaces"][0]


@pytest.mark.parametrize(
    ("overrides", "arguments", "named"),
    [
        (["objective=val_acc"], (), "objectives ['val/loss_best'] is now ['val/acc_best']"),
        (["hparams_search=cnn_optuna", "name=mlp_optuna"], (), "`model=mlp` is now `model=cnn`"),
        ([], ("model.net.units=range(10, 40, step=10)",), "`model.net.units` was 50..350"),
        ([], ("trainer.max_epochs=3",), "`trainer.max_epochs unset` is now"),
        ([], ("model.optimizer.lr=interval(0.001, 0.1)",), "`model.optimizer.lr` was choice"),
    ],
)
def test_a_study_name_cannot_hold_another_experiment(
    tmp_path: Path, overrides: list[str], arguments: tuple[str, ...], named: str
) -> None:
    before = _stored(_open(tmp_path, check_values=False))
    with pytest.raises(ConfigError, match="is another experiment") as refused:
        _open(tmp_path, *overrides, arguments=arguments, check_values=False)
    assert named in str(refused.value) and "name=" in str(refused.value)
    assert _stored(_open(tmp_path, check_values=False)) == before  # the refusal wrote nothing


def test_a_wider_space_resumes_and_is_recorded(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _open(tmp_path, check_values=False)
    wider = (
        "model.net.units=range(50, 600, step=50)",
        "model.optimizer.lr=choice(0.1,0.01,0.001,0.0001)",
    )
    with caplog.at_level("INFO"):
        spaces = _stored(_open(tmp_path, arguments=wider, check_values=False))["search_spaces"]
    assert len(spaces) == 2 and spaces[0] != spaces[1]
    assert "model.net.units: 50..350 step 50 -> 50..550 step 50" in caplog.text


@pytest.mark.parametrize(
    ("search", "named"),
    [
        ("trainer.max_epochs=range(0, 2)", "trainer.max_epochs"),
        ("data.batch_size=choice(0, 32)", "batch_size"),
        ("data.augment=choice(true, maybe)", "data.augment"),
        ("+model.net.nonexistent=choice(1, 2)", "nonexistent"),
        ("+trainer.bogus=choice(1, 2)", "bogus"),
    ],
)
def test_every_searched_key_is_tried_before_the_study(
    tmp_path: Path, search: str, named: str
) -> None:
    with pytest.raises(ConfigError, match="The search space can propose") as refused:
        _open(tmp_path, arguments=(search,))
    assert named in str(refused.value)
    assert not (tmp_path / "sweep").exists()


def test_missing_data_is_found_before_the_study(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FASHION_MNIST_DIR", str(tmp_path / "nothing"))
    with pytest.raises(DataError, match="missing"):
        _open(tmp_path, "data.download=false")
    assert not (tmp_path / "sweep").exists()


def test_an_in_memory_storage_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="keeps the study in memory"):
        _open(tmp_path, "hydra.sweeper.storage=sqlite:///:memory:")
    assert not (tmp_path / "sweep").exists()


def _sampled_trials(sweep: roles.Sweep, n: int) -> list[tuple[dict, list[str]]]:
    """Ask ``n`` trials of the sweep's study and sample them, as a worker does (no training)."""
    sampled = []
    for _ in range(n):
        trial = sweep.study.ask()
        overrides = sweep.space.sample(trial, sweep.config)
        sweep.study.tell(trial, 0.5)
        sampled.append((trial.params, overrides))
    return sampled


def test_an_architecture_study_samples_each_architecture_s_own_space(tmp_path: Path) -> None:
    sweep = _open(tmp_path, "hparams_search=arch_optuna", "name=arch_optuna")
    assert set(sweep.space.branches["model"]) == {"mlp", "cnn", "resnet"}
    chosen = set()
    for params, overrides in _sampled_trials(sweep, 12):
        arch = params["model"]
        chosen.add(arch)
        assert all(name == "model" or name.startswith(f"{arch}:") for name in params)
        assert f"model={arch}" in overrides
    assert len(chosen) >= 2
    resnet = sweep.space.branches["model"]["resnet"]
    assert resnet.params["model/optimizer"].choices == ("adamw",)  # the branch's fixed value


def test_a_conditional_parameter_is_sampled_only_under_its_option(tmp_path: Path) -> None:
    momentum = (
        "+hydra.sweeper.conditional={model/optimizer: {sgd: {params: "
        "{model.optimizer.momentum: 'interval(0.5, 0.99)'}}, adam: {}}}"
    )
    sweep = _open(tmp_path, momentum)
    trials = _sampled_trials(sweep, 10)
    assert {params["model/optimizer"] for params, _ in trials} == {"adam", "sgd"}
    for params, overrides in trials:
        under_sgd = params["model/optimizer"] == "sgd"
        assert ("sgd:model.optimizer.momentum" in params) == under_sgd
        assert any(o.startswith("model.optimizer.momentum=") for o in overrides) == under_sgd


@pytest.mark.parametrize(
    ("conditional", "message"),
    [
        ("{model/optimizer: {rmsprop: {}}}", "gives a space to rmsprop, which the search never"),
        ("{model: [mlp, transformer]}", "No search space for model=transformer"),
        ("{trainer.max_epochs: [1, 2]}", "is not a config group"),
        (
            "{model/optimizer: {sgd: {params: {model.net.filters: 'choice(32, 64)'}}, adam: {}}}",
            "propose model.net.filters=32, which the run refuses",
        ),
    ],
)
def test_a_bad_conditional_space_is_one_paragraph_before_the_study(
    tmp_path: Path, conditional: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        _open(tmp_path, f"+hydra.sweeper.conditional={conditional}")
    assert not (tmp_path / "sweep").exists()


def test_an_architecture_study_reports_and_retrains_each_architecture(tmp_path: Path) -> None:
    sweep = _open(tmp_path, "hparams_search=arch_optuna", "name=arch_optuna")
    numbers: dict[str, list[int]] = {}
    for params, _ in _sampled_trials(sweep, 9):  # every trial told 0.5
        numbers.setdefault(params["model"], []).append(len(sum(numbers.values(), [])))
    report.write_all(sweep.study, sweep.sweep_dir)
    text = (sweep.sweep_dir / report.REPORT_FILE).read_text()
    assert "## Per architecture" in text
    for arch, trials in numbers.items():
        assert f"| {arch} | {len(trials)} | 0.5" in text
    # equal values: each architecture's first trial is its best
    arch = sorted(numbers)[0]
    storage = f"sqlite:///{sweep.sweep_dir / 'optuna.db'}"
    [best] = load_best(storage, choice=("model", arch))
    assert best.number == numbers[arch][0]
    argv = expand_best_of([f"best_of={sweep.sweep_dir}", f"model={arch}"])
    assert set(best.overrides) - {f"model={arch}"} <= set(argv)
    assert all(":" not in o for o in argv)  # overrides, not trial parameter names


def _told(sweep: roles.Sweep, values: list[float]) -> None:
    """Ask, sample and tell one trial per value, as a worker does (no training)."""
    for value in values:
        trial = sweep.study.ask()
        sweep.space.sample(trial, sweep.config)
        sweep.study.tell(trial, value)


ARCH_VALUES = [0.9, 0.3, 0.5, 0.7, 0.2, 0.6, 0.4, 0.8, 0.1, 0.35]


def test_an_architecture_study_plots_each_architecture_s_parameters_apart(
    tmp_path: Path,
) -> None:
    sweep = _open(tmp_path, "hparams_search=arch_optuna", "name=arch_optuna", check_values=False)
    _told(sweep, ARCH_VALUES)
    plots = {p.name for p in report.write_all(sweep.study, sweep.sweep_dir)}
    trials = Counter(t.params["model"] for t in sweep.study.trials)
    apart = {
        f"{kind}_model-{arch}.png"
        for arch, n in trials.items()
        if n >= 2  # one trial has no parameter that changed
        for kind in ("param_importances", "parallel_coordinates")
    }
    assert len(apart) >= 4  # at least two architectures drawn apart
    assert (
        plots
        == {"optimization_history.png", "param_importances.png"}
        | {"parallel_coordinates.png"}
        | apart
    )
    text = (sweep.sweep_dir / report.REPORT_FILE).read_text()
    assert all(f"![{name}]({name})" in text for name in plots)


@pytest.mark.slow  # W&B starts its service process
def test_an_architecture_study_s_wandb_run_holds_the_per_architecture_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolated_env: dict[str, str]
) -> None:
    monkeypatch.setenv("HOME", isolated_env["HOME"])
    sweep = _open(tmp_path, "hparams_search=arch_optuna", "name=arch_optuna", check_values=False)
    _told(sweep, ARCH_VALUES)
    plots = report.write_all(sweep.study, sweep.sweep_dir)
    storage = f"sqlite:///{sweep.sweep_dir / 'optuna.db'}"
    log_study(sweep.study, sweep.sweep_dir, plots, {"project": "t", "offline": True}, storage)
    [run_dir] = sweep.sweep_dir.glob("wandb/offline-run-*")
    run = inspect_wandb_run(run_dir, isolated_env)
    table = json.loads((run_dir / "files" / run["summary"]["per_model"]["path"]).read_text())
    _, rows = report.choice_rows(sweep.study, queries.reported_trials(sweep.study), "model")
    assert table["columns"][:4] == ["model", "trials", "best_value", "best_trial"]
    assert [row[:4] for row in table["data"]] == [row[:4] for row in rows]
    best = {
        arch: min(t.value for t in sweep.study.trials if t.params["model"] == arch)
        for arch in {t.params["model"] for t in sweep.study.trials}
    }
    assert {row[0]: row[2] for row in table["data"]} == pytest.approx(best)
    assert "plots/parallel_coordinates_model-cnn" in run["summary"]
