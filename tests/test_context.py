"""The sweep-to-trial contract: one config node, validated where it is read, no secret in it."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from sweeplab.errors import ConfigError
from sweeplab.sweep.context import NODE, STORAGE_ENV, TrialContext, handing_over, is_pruned


def _through_hydra(override: str) -> TrialContext | None:
    """Apply an override to a config as Hydra's parser reads it, then read the context."""
    [parsed] = OverridesParser.create().parse_overrides([override])
    cfg = OmegaConf.create({NODE: None})
    OmegaConf.update(cfg, parsed.key_or_group.removeprefix("++"), parsed.value(), merge=False)
    return TrialContext.from_config(cfg)


def test_outside_a_sweep_there_is_no_context() -> None:
    assert TrialContext.from_config(OmegaConf.create({NODE: None})) is None
    assert TrialContext.from_config(OmegaConf.create({})) is None


@pytest.mark.parametrize(
    "storage",
    ["sqlite:////tmp/it's here/optuna.db", "journal:///shared/a,b/study.log", "sqlite:///x.db"],
)
def test_the_override_survives_hydras_parser(storage: str) -> None:
    context = TrialContext(
        "cnn_optuna",
        7,
        storage,
        {"_target_": "optuna.pruners.MedianPruner", "n_warmup_steps": 1, "x": 0.5},
    )
    assert context.as_override().startswith(f"++{NODE}=")
    assert _through_hydra(context.as_override()) == context


@pytest.mark.parametrize(
    ("node", "message"),
    [
        ({"study_name": "s", "number": -1, "storage": "x"}, "number`=-1 is invalid"),
        ({"study_name": "s", "number": 1, "storage": "x", "user_errors": "log"}, "raise or exit"),
        ({"study_name": "s", "number": 1, "storage": "x", "what": 1}, "set by sweeplab's sweeper"),
        ("trial 3", "set by sweeplab's sweeper"),
    ],
)
def test_a_bad_node_is_one_paragraph(node: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        TrialContext.from_config(OmegaConf.create({NODE: node}))


def test_a_password_is_masked_and_read_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    masked = TrialContext("s", 0, "postgresql://bob:***@db.example/optuna")
    assert "***" in masked.as_override()
    monkeypatch.delenv(STORAGE_ENV, raising=False)
    with pytest.raises(ConfigError, match=f"export it as {STORAGE_ENV}"):
        masked.trial()
    monkeypatch.setenv(STORAGE_ENV, "postgresql://bob:other@elsewhere/optuna")
    with pytest.raises(ConfigError, match="password is not written anywhere"):
        masked.trial()


def test_a_trial_in_the_workers_process_gets_the_live_trial(tmp_path: Path) -> None:
    study = optuna.create_study(study_name="s", storage=f"sqlite:///{tmp_path / 's.db'}")
    trial = study.ask()
    context = TrialContext("s", trial.number, "sqlite:///nowhere/never-opened.db")
    with handing_over("s", [trial]):
        assert context.trial() is trial  # no storage opened
    with pytest.raises(ConfigError):  # afterwards it would reopen the (missing) storage
        context.trial()


def test_pruned_is_recognised_by_type() -> None:
    assert is_pruned(optuna.TrialPruned("stop"))
    assert not is_pruned(ValueError("pruned"))
