from __future__ import annotations

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, IntDistribution

from sweeplab.errors import ConfigError
from sweeplab.sweep.spaces import LayerSpace, format_override, parse_distribution

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


def test_layer_space_owns_its_count_and_layer_values() -> None:
    assert SPACE.owns("num_dense_layers") and SPACE.owns("model.net.hidden_units[1]")
    assert not SPACE.owns("model.net.units") and not SPACE.owns("model/optimizer")
