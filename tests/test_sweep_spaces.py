from __future__ import annotations

import optuna
import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from optuna.distributions import BaseDistribution, CategoricalDistribution, IntDistribution

from sweeplab.errors import ConfigError
from sweeplab.sweep.spaces import (
    LayerSpace,
    SearchSpace,
    format_override,
    parse_distribution,
    to_distribution,
)

SPACE = LayerSpace.from_config(
    {
        "name": "num_dense_layers",
        "count": "range(1, 3)",
        "params": {
            "model.net.hidden_units": "range(50, 125, step=25)",
            "model.net.hidden_dropout": "choice(0.0, 0.1, 0.2)",
        },
    }
)


def test_parse_hydra_sweep_syntax() -> None:
    assert parse_distribution("u", "range(50, 400, step=50)") == IntDistribution(50, 350, step=50)
    assert parse_distribution("o", "choice(adam, sgd)") == CategoricalDistribution(["adam", "sgd"])


@pytest.mark.parametrize("expression", ["7", "choice(", "nonsense(1)"])
def test_bad_space_is_a_config_error(expression: str) -> None:
    with pytest.raises(ConfigError, match="`model.net.units`"):
        parse_distribution("model.net.units", expression)


def test_layer_space_needs_its_keys() -> None:
    with pytest.raises(ConfigError, match="lacks count, params"):
        LayerSpace.from_config({"name": "n"})


def test_inactive_layer_parameters_are_never_sampled() -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    counts = set()
    for _ in range(30):
        trial = study.ask()
        lists = SPACE.suggest(trial)
        count = trial.params["num_dense_layers"]
        counts.add(count)
        assert len(lists["model.net.hidden_units"]) == count
        assert len(lists["model.net.hidden_dropout"]) == count
        layer_params = {k for k in trial.params if "[" in k}
        expected = {
            f"model.net.hidden_{p}[{i}]" for p in ("units", "dropout") for i in range(count)
        }
        assert layer_params == expected
        assert all(u in (50, 75, 100) for u in lists["model.net.hidden_units"])
        study.tell(trial, 0.0)
    assert counts == {1, 2}


def test_format_override_lists() -> None:
    assert format_override("model.net.filters", [32, 64]) == "model.net.filters=[32,64]"
    assert format_override("model.net.padding", ["valid"]) == "model.net.padding=[valid]"
    assert format_override("model/optimizer", "sgd") == "model/optimizer=sgd"


@pytest.mark.parametrize(
    "expression",
    [
        "choice(adam, sgd)",
        "choice(0.1, 0.01, 0.001)",
        "choice(true, false)",
        "choice(1, 2.5, x)",
        "range(50, 400, step=50)",
        "range(1, 3)",
        "range(10, 0, step=-2)",
        "range(0.1, 0.5, step=0.1)",
        "range(0.0, 1.0, step=0.25)",
        "shuffle(range(1, 4))",
        "interval(0.001, 0.1)",
        "interval(1, 10)",
        "tag(log, interval(0.0001, 0.1))",
        "tag(log, interval(1, 1024))",
    ],
)
def test_each_sweep_syntax_maps_as_the_stock_plugin_does(expression: str) -> None:
    # The stock Hydra Optuna plugin, as the reference for what each syntax means to Optuna.
    from hydra_plugins.hydra_optuna_sweeper._impl import create_optuna_distribution_from_override

    [override] = OverridesParser.create().parse_overrides([f"key={expression}"])
    ours, stock = to_distribution(override), create_optuna_distribution_from_override(override)
    assert isinstance(ours, BaseDistribution)
    if expression.startswith("shuffle"):  # the same choices, each in its own random order
        assert sorted(ours.choices) == sorted(stock.choices)
    else:
        assert ours == stock


def test_a_plain_value_fixes_a_swept_key_and_keeps_its_place() -> None:
    space = SearchSpace.from_overrides(
        [
            "model.net.units=range(50, 400, step=50)",
            "model/optimizer=choice(adam, sgd)",
            "model/optimizer=sgd",
            "data.augment=true",
            "~callbacks.lr_monitor",
        ]
    )
    assert set(space.params) == {"model.net.units"}
    assert space.fixed == ["model/optimizer=sgd", "data.augment=true", "~callbacks.lr_monitor"]


def test_a_command_line_sweep_replaces_the_configs_range() -> None:
    # python train.py -m hparams_search=cnn_optuna 'model.net.units=range(50,200,step=50)'
    space = SearchSpace.from_overrides(
        ["model.net.units=range(25, 175, step=25)", "model.net.units=range(50,200,step=50)"]
    )
    assert space.params["model.net.units"] == IntDistribution(50, 150, step=50)


def test_samples_reach_the_run_as_overrides() -> None:
    space = SearchSpace.from_overrides(["model.optimizer.lr=tag(log, interval(1e-4, 1e-1))"])
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    [override] = space.sample(trial, config=None)
    assert override == f"model.optimizer.lr={trial.params['model.optimizer.lr']}"
    assert 1e-4 <= trial.params["model.optimizer.lr"] <= 1e-1


def test_grid_lists_every_discrete_value() -> None:
    space = SearchSpace.from_overrides(
        ["a=range(1, 4)", "b=choice(x, y)", "c=range(0.0, 1.0, 0.5)"]
    )
    assert space.grid() == {"a": [1, 2, 3], "b": ["x", "y"], "c": [0.0, 0.5]}
    with pytest.raises(ConfigError, match="`d` is continuous"):
        SearchSpace.from_overrides(["d=interval(0, 1)"]).grid()
