"""The sweep-to-trial contract: one config node, validated where it is read, no secret in it."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from sweeplab.errors import ConfigError
from sweeplab.sweep.context import (
    NODE,
    STORAGE_ENV,
    STORAGE_FROM_ENV,
    TrialContext,
    handing_over,
    is_pruned,
    share_storage,
)


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
    [
        "sqlite:////tmp/it's here/optuna.db",
        "journal:///shared/a,b/study.log",
        "sqlite:///C:\\data\\s.db",
        "sqlite:///x\\'y\\",
        "journal:///runs/${oops}/x.log",
    ],
)
def test_the_override_survives_hydras_parser(storage: str) -> None:
    pruner = {"_target_": "optuna.pruners.MedianPruner", "n_warmup_steps": 1, "x": 0.5}
    for context in (
        TrialContext("cnn_${x}_optuna", 7, storage, pruner),
        TrialContext("s", 0, storage),
    ):
        assert context.as_override().startswith(f"++{NODE}=")
        assert _through_hydra(context.as_override()) == context
    assert "user_errors" not in TrialContext("s", 0, storage).as_override()  # defaults left out


@pytest.mark.parametrize(
    ("node", "message"),
    [
        ({"study_name": "s", "number": -1, "storage": "x"}, "number`=-1 is invalid"),
        ({"study_name": "s", "number": 1, "storage": "x", "user_errors": "log"}, "raise or exit"),
        ({"study_name": "s", "number": 1, "storage": "x", "what": 1}, "has no key what"),
        ({"study_name": "s", "number": 1, "storage": 5}, "storage`=5 is invalid"),
        ({"study_name": "s", "number": 1, "storage": "x", "pruner": 5}, "pruner`=5 is invalid"),
        ({"study_name": "s", "number": 1}, "needs study_name, number and storage"),
        ("trial 3", "sets sweep_trial for each trial"),
    ],
)
def test_a_bad_node_is_one_paragraph(node: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        TrialContext.from_config(OmegaConf.create({NODE: node}))


@pytest.mark.parametrize(
    "url",
    ["postgresql://bob:hunter2@db.example/optuna", "postgresql://db.example/o?password=hunter2"],
)
def test_a_storage_password_is_never_in_the_context(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    context = TrialContext.for_trial("s", 0, url, None)
    assert context.storage == STORAGE_FROM_ENV and "hunter2" not in context.as_override()
    monkeypatch.setenv(STORAGE_ENV, "")  # so that the URL share_storage sets is undone too
    monkeypatch.delenv(STORAGE_ENV)
    with pytest.raises(ConfigError, match=f"in the environment variable {STORAGE_ENV}"):
        context.trial()
    share_storage(url)  # what the worker does for the processes it launches
    assert __import__("os").environ[STORAGE_ENV] == url
    plain = f"sqlite:///{tmp_path / 's.db'}"
    assert TrialContext.for_trial("s", 0, plain, None).storage == plain


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


def test_a_context_naming_a_trial_the_storage_lacks_is_one_paragraph(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 's.db'}"
    optuna.create_study(study_name="s", storage=storage)
    for context in (TrialContext("s", 3, storage), TrialContext("other", 0, storage)):
        with pytest.raises(ConfigError, match="which does not hold it"):
            context.trial()


def test_only_a_multirun_job_is_a_trial() -> None:
    """A trial run again on its own from its saved overrides is an ordinary run."""
    from sweeplab.train import trial_context

    cfg = OmegaConf.create({NODE: {"study_name": "s", "number": 0, "storage": "sqlite:///x.db"}})
    assert trial_context(cfg) is None  # no Hydra multirun here
    assert trial_context(OmegaConf.create({NODE: None})) is None
