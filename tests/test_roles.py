"""The sweep's set-up, in process: everything is checked before anything is written."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from sweeplab.errors import ConfigError
from sweeplab.sweep import roles
from sweeplab.sweep.settings import SweepSettings
from tests.conftest import ROOT


def _open(tmp_path: Path, *overrides: str, arguments: tuple[str, ...] = ()) -> roles.Sweep:
    """Open the sweep of ``hparams_search=mlp_optuna``, as the sweeper does; ``arguments`` are
    the command's sweep overrides, which Hydra hands the sweeper rather than composing them."""
    GlobalHydra.instance().clear()
    fixed = ["hparams_search=mlp_optuna", f"hydra.sweep.dir={tmp_path / 'sweep'}", *overrides]
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
            check_values=True,
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
