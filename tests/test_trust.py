"""What a config may instantiate: the names meant for configs, never a whole package."""

from __future__ import annotations

import re

import pytest
from omegaconf import OmegaConf

from sweeplab.build import instantiate
from sweeplab.errors import ConfigError
from sweeplab.sweep.algorithms import PRUNERS, SAMPLERS
from sweeplab.trust import SWEEPLAB_TARGETS, TRUSTED_ENV, family, trusted_targets
from tests.conftest import ROOT

CONFIG_TARGETS = {
    target
    for path in (ROOT / "configs").rglob("*.yaml")
    for target in re.findall(r"_target_:\s*([\w.]+)", path.read_text())
}


def test_every_target_in_configs_is_trusted_and_sweeplabs_list_is_exactly_theirs() -> None:
    allowed = set(trusted_targets()) | set(family(*SAMPLERS)) | set(family(*PRUNERS))
    assert allowed >= CONFIG_TARGETS, CONFIG_TARGETS - allowed
    assert set(SWEEPLAB_TARGETS) == {t for t in CONFIG_TARGETS if t.startswith("sweeplab.")}


@pytest.mark.parametrize(
    "target",
    [
        "sweeplab.sweep.workers.run_local",  # starts processes
        "sweeplab.sweep.slurm_job.WorkerJob",  # runs a worker command
        "sweeplab.process.apply",
        "pytorch_lightning.utilities.rank_zero.rank_zero_info",
        "torch.optim.swa_utils.AveragedModel",  # under torch.optim, not an optimizer
        "builtins.print",
        "os.system",
    ],
)
def test_a_name_not_meant_for_configs_is_refused_before_it_is_imported(target: str) -> None:
    node = OmegaConf.create({"_target_": target, "command": ["touch", "owned.txt"]})
    with pytest.raises(ConfigError, match=f"`callbacks.x._target_`='{re.escape(target)}' is"):
        instantiate(node, "callbacks.x")


def test_a_users_package_is_trusted_by_its_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TRUSTED_ENV, "myarch, lab.models")
    assert trusted_targets()[-2:] == ["myarch.*", "lab.models.*"]
    monkeypatch.setenv(TRUSTED_ENV, "my-arch")
    with pytest.raises(ConfigError, match="not a module prefix"):
        trusted_targets()


def test_the_families_come_from_the_installed_libraries() -> None:
    names = trusted_targets()
    for expected in (
        "torch.optim.Adam",
        "torch.optim.lr_scheduler.CosineAnnealingLR",
        "pytorch_lightning.callbacks.EarlyStopping",
        "pytorch_lightning.loggers.CSVLogger",
    ):
        assert expected in names
    assert "optuna.samplers.TPESampler" in family(*SAMPLERS)
    assert "optuna.pruners.HyperbandPruner" in family(*PRUNERS)
    assert not any(name.endswith("*") for name in names)  # no package prefix of ours
