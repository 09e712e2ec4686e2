"""Fuzzing the config surface: any value of the wrong type, out of range, empty, huge, or a
string shaped like an interpolation, a target, a path escape or a shell command, set at any
key of the training config or of the sweeper's settings, is either accepted or refused with
one paragraph that names the key; never another exception, and nothing is written."""

from __future__ import annotations

import contextlib
import copy
import io
import math
import os
import tempfile
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omegaconf import DictConfig, OmegaConf, open_dict

from sweeplab import train
from sweeplab.data.fashion_mnist import FashionMNISTDataModule
from sweeplab.errors import USER_ERRORS, user_error
from sweeplab.sweep.settings import SweepSettings
from tests.test_configs import CONFIGS, compose_train

# The architectures' baselines: their keys are the training config's surface.
VARIANTS = {"mlp": "experiment=mlp_baseline", "cnn": "experiment=cnn_baseline"}
# The sweeper's settings, with and without a SLURM cluster.
SWEEPERS = {"local": (), "slurm": ("hydra/sweeper/cluster=slurm",)}
SHELL = ["; touch pwned", "$(touch pwned)", "`touch pwned`", "x | touch pwned", "a;b"]
NASTY_STRINGS = [
    "",
    " ",
    "${nope}",
    "${oc.env:HOME}",
    "${..}",
    "_target_",
    "os.system",
    "../",
    "../../escaped",
    "/",
    "x" * 10_000,
    *SHELL,
]
NASTY_VALUES = [
    None,
    True,
    False,
    0,
    -1,
    2**31,
    2**63,
    -(2**63),
    10**30,
    0.5,
    -0.5,
    1e308,
    math.inf,
    -math.inf,
    math.nan,
    [],
    {},
    [1, "a"],
    {"a": 1},
    {"_target_": "os.system", "command": "touch pwned"},
]
# One example per kind of value per key would be thousands of runs; these many, spread by
# Hypothesis over the kinds, keep the test under a minute.
TRAIN_EXAMPLES = 2
SWEEPER_EXAMPLES = 4


def values() -> st.SearchStrategy[Any]:
    """A value of the wrong type, out of range, empty, huge, or a hostile string."""
    return st.one_of(
        st.sampled_from(NASTY_STRINGS),
        st.sampled_from(NASTY_VALUES),
        st.integers(min_value=-3, max_value=3),
        st.text(max_size=12),
    )


def keys(node: DictConfig, prefix: str = "") -> Iterator[str]:
    """Every key of ``node``, containers included, as dotted paths (interpolations unread)."""
    for name in node:
        key = f"{prefix}{name}"
        yield key
        child = node._get_node(name)
        if isinstance(child, DictConfig) and not child._is_none():
            yield from keys(child, f"{key}.")


@cache
def training(variant: str, data_dir: str) -> DictConfig:
    """The composed training config, as train.py gets it (compose once per variant)."""
    return compose_train(VARIANTS[variant], "logger=none", f"data.data_dir={data_dir}")


@cache
def sweeper(variant: str) -> DictConfig:
    """The composed config of ``hparams_search=mlp_optuna``, the ``hydra`` node kept."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONFIGS)):
        overrides = ["hparams_search=mlp_optuna", *SWEEPERS[variant]]
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    return cfg


def training_keys() -> list[tuple[str, str]]:
    skip = {"sweep_trial"}  # the sweeper's node; a single run ignores it (test_context)
    with tempfile.TemporaryDirectory() as data:
        return [
            (variant, key)
            for variant in VARIANTS
            for key in keys(training(variant, data))
            if key not in skip
        ]


def sweeper_keys() -> list[tuple[str, str]]:
    found = {
        (variant, key)
        for variant in SWEEPERS
        for key in keys(sweeper(variant).hydra.sweeper, "hydra.sweeper.")
        if key != "hydra.sweeper._target_"  # Hydra's plugin lookup, not a setting
    }
    return sorted(found)


def tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under ``root`` with its size and modification time."""
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")
    }


@contextlib.contextmanager
def sandbox() -> Iterator[Path]:
    """A fresh temporary tree with the working directory three levels down, so that ``../``
    and ``../../`` land inside it; yields the tree's root."""
    with tempfile.TemporaryDirectory() as root:
        cwd = Path(root) / "a" / "b" / "c"
        cwd.mkdir(parents=True)
        before = os.getcwd()
        os.chdir(cwd)
        try:
            yield Path(root)
        finally:
            os.chdir(before)


def set_value(cfg: DictConfig, key: str, value: Any) -> DictConfig | None:
    """A copy of ``cfg`` with ``key`` set to ``value``; ``None`` when OmegaConf refuses the
    value itself (as Hydra's parser refuses the override), which is the user's one line."""
    changed = copy.deepcopy(cfg)
    try:
        with open_dict(changed):
            OmegaConf.update(changed, key, value, merge=False)
    except USER_ERRORS:
        return None
    return changed


class Reached(BaseException):
    """Training would start now: every check before it passed."""


# Refused in one paragraph, but not by this key's name: the networks do not check num_classes
# (models/mlp.py, models/cnn.py) nor bound units (torch's allocation error names model.net),
# and a broken interpolation is reported where it is read first
# (callbacks.model_checkpoint.dirpath), not where it is written.
NAMED_ELSEWHERE = {
    "model.num_classes",
    "model.net.num_classes",
    "model.net.units",
    "paths.output_dir",
}


def assert_one_paragraph(message: str, key: str) -> None:
    name = key.rsplit(".", 1)[-1]
    assert name in message or key in NAMED_ELSEWHERE, f"the error does not name {key}: {message}"
    assert "Traceback" not in message and "\n" not in message.strip(), message


def pre_training(cfg: DictConfig) -> str | None:
    """Run train.py's task on ``cfg`` up to the start of training; the paragraph it exits
    with, or ``None`` when every check passed."""
    stderr = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stderr(stderr):
        patch.setattr(pl.Trainer, "fit", _reached)
        # The data files are test_idx's and test_datamodule's: here, no reading or download.
        patch.setattr(FashionMNISTDataModule, "prepare_data", lambda self: None)
        try:
            train.main(cfg)
        except Reached:
            return None
        except SystemExit as exited:
            assert exited.code == 1
            return stderr.getvalue().rsplit("\nError: ", 1)[-1]
    raise AssertionError("train.main returned without training")


def _reached(*args: Any, **kwargs: Any) -> None:
    raise Reached


def fuzz(examples: int) -> settings:
    """Reproducible in CI (derandomized, no example database) and bounded in time."""
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


@pytest.fixture
def no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [k for k in os.environ if k.startswith(("WANDB_", "FASHION_", "SWEEPLAB_"))]:
        monkeypatch.delenv(key)


@pytest.mark.slow  # every key of two configs through a run's checks: about 45 s, CI only
@pytest.mark.parametrize(("variant", "key"), training_keys())
@fuzz(TRAIN_EXAMPLES)
@given(value=values())
def test_any_training_value_passes_or_is_one_paragraph(
    fashion_dir: Path, no_environment: None, variant: str, key: str, value: Any
) -> None:
    message = _refusal(fashion_dir, variant, key, value)
    if message is not None:
        assert_one_paragraph(message, key)


def _refusal(fashion_dir: Path, variant: str, key: str, value: Any) -> str | None:
    """The paragraph train.py's task refuses ``key=value`` with (``None``: it would train),
    checking that it wrote nothing."""
    with sandbox() as root:
        cfg = training(variant, str(fashion_dir))
        with open_dict(cfg):
            cfg.paths.log_dir = str(root / "logs")
            cfg.paths.output_dir = str(root / "logs" / "run")
        HydraConfig.instance().set_config(_with_hydra(variant, str(root / "logs" / "run")))
        changed = set_value(cfg, key, value)
        if changed is None:
            return "refused by OmegaConf as it was set: " + key
        before = tree(root)
        message = pre_training(changed)
        assert tree(root) == before, f"{key}={value!r} wrote files"
    return message


# What the fuzz found, each once a traceback, a hang or a message without its key.
FOUND = [
    ("mlp", "data", ""),  # a part given a word: Hydra's multi-line error
    ("mlp", "model", "x"),  # AttributeError in the checks
    ("mlp", "callbacks.rich_progress_bar", True),  # TypeError in instantiate_group
    ("mlp", "logger", "x"),  # AttributeError in instantiate_group
    ("mlp", "data._target_", None),  # "Expected a callable target", no key
    ("cnn", "callbacks.lr_monitor._target_", "\n"),  # a newline in the paragraph
    ("mlp", "data.data_dir", None),  # TypeError from pathlib, no key
    ("mlp", "callbacks.model_checkpoint.dirpath", True),
    ("mlp", "trainer.default_root_dir", True),  # through the trainer factory's **kwargs
    ("mlp", "model.net.input_shape", " "),  # torch's error, no key
    ("mlp", "callbacks.model_checkpoint.mode", "\n"),  # Lightning's message, two lines
    ("mlp", "trainer.devices", 2**31),  # a 70-second Trainer, then a process per device
    ("mlp", "trainer.devices", 2**63),  # OverflowError
]


@pytest.mark.parametrize(("variant", "key", "value"), FOUND)
def test_what_the_fuzz_found_is_one_paragraph(
    fashion_dir: Path, no_environment: None, variant: str, key: str, value: Any
) -> None:
    message = _refusal(fashion_dir, variant, key, value)
    assert message is not None, f"{key}={value!r} passed"
    assert_one_paragraph(message, key)


def _with_hydra(variant: str, output_dir: str) -> DictConfig:
    """The Hydra config of a single run of ``variant``, its directory ``output_dir``."""
    cfg = copy.deepcopy(_composed(variant))
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = output_dir
    return cfg


@cache
def _composed(variant: str) -> DictConfig:
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONFIGS)):
        return compose("train", overrides=[VARIANTS[variant]], return_hydra_config=True)


@pytest.mark.parametrize(("variant", "key"), sweeper_keys())
@fuzz(SWEEPER_EXAMPLES)
@given(value=values())
def test_any_sweeper_setting_passes_or_is_one_paragraph(
    no_environment: None, variant: str, key: str, value: Any
) -> None:
    with sandbox() as root:
        cfg = sweeper(variant)
        HydraConfig.instance().set_config(cfg)
        with open_dict(cfg):
            cfg.paths.log_dir = str(root / "logs")
        changed = set_value(cfg, key, value)
        if changed is None:
            return
        before = tree(root)
        message = check_settings(changed.hydra.sweeper)
        assert tree(root) == before, f"{key}={value!r} wrote files"
    if message is not None:
        assert_one_paragraph(message, key)


def check_settings(node: DictConfig) -> str | None:
    """``SweepSettings.from_kwargs`` on the node's values as Hydra hands them to the sweeper
    (read one by one: scalars resolved, groups as config nodes); the paragraph it refuses
    with, or ``None``."""
    try:
        kwargs = {str(k): node[k] for k in node if k != "_target_"}
        SweepSettings.from_kwargs(kwargs)
    except USER_ERRORS as e:
        return str(user_error(e))
    return None
