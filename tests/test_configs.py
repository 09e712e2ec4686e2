"""Every YAML in configs/ composes, and the composed parts instantiate."""

from __future__ import annotations

from pathlib import Path

import hydra
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from sweeplab.sweep.algorithms import build_pruner, build_sampler
from sweeplab.sweep.spaces import SearchSpace
from sweeplab.trust import trusted_targets
from tests.conftest import ROOT

CONFIGS = ROOT / "configs"
GROUPS = [
    "objective",
    "hparams_search",
    "data",
    "model",
    "model/optimizer",
    "model/scheduler",
    "trainer",
    "logger",
    "callbacks",
    "paths",
    "hydra",
    "experiment",
    "debug",
]


BASES = {"model": {"classifier"}}  # shared parts that architectures build on, not options


def _options(group: str) -> list[str]:
    stems = {p.stem for p in (CONFIGS / group).glob("*.yaml")}
    return sorted(stems - BASES.get(group, set()))


def compose_train(*overrides: str, config_name: str = "train") -> DictConfig:
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONFIGS)):
        cfg = compose(config_name, overrides=list(overrides), return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = "/tmp/sweeplab-compose"  # normally set by a running Hydra job
        del cfg.hydra
    return cfg


def test_every_group_has_options() -> None:
    for group in GROUPS:
        assert _options(group), f"configs/{group} is empty"


@pytest.mark.parametrize(
    "override",
    [f"{group}={option}" for group in GROUPS if group != "hydra" for option in _options(group)],
)
def test_every_option_composes(override: str) -> None:
    cfg = compose_train(override)
    assert cfg.model.net._target_.startswith("sweeplab.models.")


@pytest.mark.parametrize(
    "override",
    [
        f"hydra/sweeper/{group}={option}"
        for group in ("sampler", "pruner")
        for option in _options(f"hydra/sweeper/{group}")
    ],
)
def test_sweeper_options_compose_and_instantiate(override: str) -> None:
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONFIGS)):
        cfg = compose(
            "train", overrides=["hparams_search=cnn_optuna", override], return_hydra_config=True
        )
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_ == "sweeplab.sweep.sweeper.SweeplabOptunaSweeper"
    assert sweeper.storage.endswith("/sweeps/cnn_optuna/optuna.db")
    space = SearchSpace.from_overrides(["x=choice(1, 2)"])
    assert build_sampler(sweeper.sampler, space, 4)[0] is not None
    assert build_pruner(sweeper.pruner) is not None


def test_search_objective_switches_with_one_override() -> None:
    loss = compose_train("hparams_search=mlp_optuna")
    assert (loss.monitor, loss.monitor_mode, loss.optimized_metric) == (
        "val/loss",
        "min",
        "val/loss_best",
    )
    acc = compose_train("hparams_search=mlp_optuna", "objective=val_acc")
    assert (acc.monitor, acc.monitor_mode, acc.optimized_metric) == (
        "val/acc",
        "max",
        "val/acc_best",
    )
    assert loss.test is False and loss.job_type == "trial" and loss.group == "mlp_optuna"


def test_sweep_trials_skip_the_sanity_pass_that_single_runs_keep() -> None:
    assert compose_train("hparams_search=cnn_optuna").trainer.num_sanity_val_steps == 0
    assert "num_sanity_val_steps" not in compose_train("experiment=cnn_baseline").trainer


def test_eval_config_composes() -> None:
    cfg = compose_train("ckpt_path=x.ckpt", config_name="eval")
    assert cfg.ckpt_path == "x.ckpt" and "model" not in cfg


@pytest.mark.parametrize("model", _options("model"))
def test_models_instantiate_and_predict(model: str) -> None:
    cfg = compose_train(f"model={model}", "model/scheduler=cosine")
    classifier = hydra.utils.instantiate(cfg.model, _execution_whitelist_=trusted_targets())
    assert classifier(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    optimizer = classifier.configure_optimizers()["optimizer"]
    assert isinstance(optimizer, torch.optim.Adam)


def test_baseline_experiments_are_the_reference() -> None:
    mlp = compose_train("experiment=mlp_baseline")
    assert mlp.model.net.units == 350 and list(mlp.model.net.hidden_units) == []
    assert mlp.data.batch_size == 32 and mlp.model.optimizer._target_ == "torch.optim.Adam"
    cnn = compose_train("experiment=cnn_baseline")
    assert list(cnn.model.net.filters) == [32] and cnn.model.net.units == 100
    assert cnn.data.batch_size == 32 and cnn.name == "cnn_baseline"


def test_data_dir_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FASHION_MNIST_DIR", "/somewhere/fm")
    assert compose_train().data.data_dir == "/somewhere/fm"
    monkeypatch.delenv("FASHION_MNIST_DIR")
    monkeypatch.setenv("SWEEPLAB_ROOT", "/project")
    assert compose_train().data.data_dir == "/project/data/fashion-mnist"


def test_sgd_is_nesterov_with_momentum() -> None:
    sgd = compose_train("model/optimizer=sgd").model.optimizer
    assert sgd.nesterov is True and sgd.momentum == 0.9


def test_configs_dir_has_no_stray_files() -> None:
    stray = [p for p in CONFIGS.rglob("*") if p.is_file() and p.suffix != ".yaml"]
    assert stray == [], f"non-YAML files in configs/: {stray}"


def test_paths_resolve_under_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWEEPLAB_ROOT", "/project")
    assert compose_train().paths.log_dir == str(Path("/project/logs"))
