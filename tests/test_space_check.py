"""A search space's values are tried on the model before the first trial."""

from __future__ import annotations

from contextlib import contextmanager

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

from sweeplab.errors import ConfigError
from sweeplab.overrides import format_override
from sweeplab.sweep.space_check import check_space
from sweeplab.sweep.spaces import LayerSpace, SearchSpace
from tests.conftest import ROOT

pytestmark = pytest.mark.usefixtures("data_in_env")


@contextmanager  # a `with` block, unlike a `for` loop, cannot silently run zero times
def space_and_config(search: str, *overrides: str, layers: dict | None = None):
    """The search space and config of ``hparams_search=<search>``, as the sweeper gets them,
    and a compose function for trial configs (usable while the ``with`` block lasts)."""
    GlobalHydra.instance().clear()
    fixed = [f"hparams_search={search}", *overrides]

    def trial_config(extra: list[str]) -> DictConfig:
        return compose("train", overrides=[*fixed, *extra])

    with initialize_config_dir(str(ROOT / "configs")):
        cfg = compose("train", overrides=fixed, return_hydra_config=True)
        sweeper = cfg.hydra.sweeper
        space = SearchSpace.from_overrides(
            [format_override(str(k), v) for k, v in sweeper.params.items()],
            layers=LayerSpace.from_config({**sweeper.layers, **(layers or {})}),
        )
        yield space, cfg, trial_config


def is_group(key: str) -> bool:
    """As the sweeper asks Hydra: does ``key`` name a config group?"""
    return bool(GlobalHydra.instance().config_loader().get_group_options(key))


@pytest.mark.parametrize("search", ["mlp_optuna", "cnn_optuna", "resnet_optuna"])
def test_the_shipped_spaces_pass(search: str) -> None:
    with space_and_config(search) as (space, cfg, trial_config):
        check_space(space, cfg, trial_config)


def test_a_per_layer_value_the_model_refuses_is_named() -> None:
    layers = {
        "params": {
            "model.net.hidden_units": "range(50, 125, step=25)",
            "model.net.hidden_dropout": "choice(0.0, 1.5)",
        }
    }
    with (
        space_and_config("mlp_optuna", layers=layers) as (space, cfg, trial_config),
        pytest.raises(ConfigError, match=r"model.net.hidden_dropout=\[1.5, ...\]"),
    ):
        check_space(space, cfg, trial_config)


def test_a_depth_that_shrinks_the_image_to_nothing_is_named() -> None:
    layers = {"count": "range(1, 6)"}
    with (
        space_and_config("cnn_optuna", layers=layers) as (space, cfg, trial_config),
        pytest.raises(ConfigError, match="num_blocks=5 .*shrinks"),
    ):
        check_space(space, cfg, trial_config)


def test_an_unknown_group_option_is_named() -> None:
    with space_and_config("mlp_optuna") as (space, cfg, trial_config):
        bad = SearchSpace.from_overrides(
            ["model/optimizer=choice(adam, lamb)"], layers=space.layers, is_group=is_group
        )
        with pytest.raises(ConfigError, match="model/optimizer=lamb.*cannot compose"):
            check_space(bad, cfg, trial_config)


def test_hydra_tells_groups_from_values() -> None:
    with space_and_config("mlp_optuna"):
        space = SearchSpace.from_overrides(
            ["model=choice(mlp, cnn)", "model/optimizer=choice(adam, sgd)", "seed=choice(1, 2)"],
            is_group=is_group,
        )
    assert space.groups == {"model", "model/optimizer"}


def test_an_architecture_choice_with_one_architectures_parameters_is_one_paragraph() -> None:
    """A top-level group is a group too (it was once taken for a value and crashed)."""
    with space_and_config("mlp_optuna") as (space, cfg, trial_config):
        both = SearchSpace.from_overrides(
            [
                *(format_override(k, v) for k, v in cfg.hydra.sweeper.params.items()),
                "model=choice(mlp, cnn)",
            ],
            layers=space.layers,
            is_group=is_group,
        )
        with pytest.raises(
            ConfigError, match="propose model=cnn, which the run refuses.*its own space"
        ):
            check_space(both, cfg, trial_config)
