"""W&B Sweeps definitions in sweeps/: checked offline with W&B's own sweep engine (the
``sweeps`` package) and the agent's own command builder, then run the way an agent runs them."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir
from wandb.sdk.launch.sweeps.utils import create_sweep_command, create_sweep_command_args
from wandb.sdk.lib import config_util

from sweeplab.build import instantiate
from sweeplab.errors import ConfigError
from sweeplab.sweep.wandb_sweeps import wandb_sweep
from tests.conftest import ROOT, inspect_wandb_run, sweeplab_cli

with warnings.catch_warnings():  # pydantic's notice about the package's v1-style config
    warnings.simplefilter("ignore")
    import sweeps

DEFINITIONS = {"mlp_bayes": "hparams_search=mlp_optuna", "cnn_bayes": "hparams_search=cnn_optuna"}


def load(name: str) -> dict:
    return yaml.safe_load((ROOT / "sweeps" / f"{name}.yaml").read_text())


def proposals(definition: dict, count: int) -> list[dict]:
    """``count`` runs W&B's Bayesian controller proposes, each told a result before the next."""
    runs: list[sweeps.SweepRun] = []
    for i in range(count):
        proposed = sweeps.next_run(definition, runs, validate=True)
        runs.append(
            sweeps.SweepRun(
                name=f"run-{i}",
                config=proposed.config,
                state=sweeps.RunState.finished,
                summary_metrics={definition["metric"]["name"]: 0.5 + 0.01 * i},
            )
        )
    return [run.config for run in runs]


def agent_argv(definition: dict, args: dict) -> list[str]:
    """The argv ``wandb agent`` runs for a proposal: wandb's builder, the agent's macros."""
    variables = create_sweep_command_args({"args": args})
    variables.update(env=[], program=[str(ROOT / definition["program"])])
    argv = []
    for part in create_sweep_command(list(definition["command"])):
        if part.startswith("${") and part.endswith("}"):
            argv += variables[part[2:-1]]
        else:
            argv.append(sys.executable if part == "python" else part)
    return argv


@pytest.mark.parametrize("name", DEFINITIONS)
def test_definitions_are_the_sweeps_spaces(name: str) -> None:
    """The committed YAML is what `sweeplab wandb-sweep` writes for the Optuna space."""
    assert load(name) == wandb_sweep(ROOT / "configs", [DEFINITIONS[name]])
    assert load(name)["metric"] == {"name": "val/loss_best", "goal": "minimize"}


@pytest.mark.parametrize("name", DEFINITIONS)
def test_every_proposal_composes_and_builds_a_model(name: str) -> None:
    import torch

    definition = load(name)
    seen_depths = set()
    with initialize_config_dir(str(ROOT / "configs")):
        for args in proposals(definition, 6):
            argv = agent_argv(definition, args)
            assert argv[:2] == [sys.executable, str(ROOT / "train.py")]
            cfg = compose("train", overrides=argv[2:])
            model = instantiate(cfg.model, "model")
            assert model(torch.rand(2, 1, 28, 28)).shape == (2, 10)
            optimizer = model.configure_optimizers()
            assert optimizer.defaults["lr"] == args["model.optimizer.lr"]["value"]
            net = cfg.model.net
            lists = [v for k, v in net.items() if k in ("hidden_units", "filters")]
            seen_depths.add(len(lists[0]))
    assert seen_depths <= {1, 2}


@pytest.mark.slow  # train.py and wandb as processes
def test_an_agent_run_trains_and_reports_the_metric(
    fashion_dir: Path, tmp_path: Path, isolated_env: dict[str, str]
) -> None:
    """One proposal run as the agent runs it: its argv, and the sweep's parameters in the
    file W&B reads at wandb.init (WANDB_SWEEP_PARAM_PATH), offline; sweeplab's own config
    logging must agree with the sweep's values, and the summary must hold the metric."""
    definition = load("cnn_bayes")
    [args] = proposals(definition, 1)
    param_file = tmp_path / "sweep-params.yaml"
    config_util.save_config_file_from_dict(str(param_file), args)
    env = dict(
        isolated_env,
        WANDB_MODE="offline",
        WANDB_SWEEP_ID="offline-test",
        WANDB_RUN_ID="agentrun1",
        WANDB_SWEEP_PARAM_PATH=str(param_file),
    )
    logs = tmp_path / "logs"
    result = subprocess.run(
        [
            *agent_argv(definition, args),
            f"paths.log_dir={logs}",
            f"data.data_dir={fashion_dir}",
            "data.val_size=100",
            "trainer.max_epochs=1",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    [run_dir] = logs.rglob("offline-run-*")
    run = inspect_wandb_run(run_dir, env)
    assert run["state"] == "finished"
    assert definition["metric"]["name"] in run["summary"]
    assert run["config"]["model.net.units"] == args["model.net.units"]["value"]
    assert run["config"]["model.optimizer.lr"] == args["model.optimizer.lr"]["value"]


def export(*overrides: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return sweeplab_cli("wandb-sweep", *overrides, "--config-dir", str(ROOT / "configs"), env=env)


@pytest.mark.slow  # the CLI as a process
def test_cli_writes_the_definition(isolated_env: dict[str, str]) -> None:
    result = export("hparams_search=mlp_optuna", env=isolated_env)
    assert result.returncode == 0, result.stderr
    assert yaml.safe_load(result.stdout) == load("mlp_bayes")
    assert result.stdout.startswith("# W&B Sweeps definition, generated by: sweeplab wandb-sweep")
    fixed = export(
        "hparams_search=cnn_optuna",
        "hydra.sweeper.n_trials=5",
        "trainer.max_epochs=10",
        "--name",
        "cnn_long",
        env=isolated_env,
    )
    definition = yaml.safe_load(fixed.stdout)
    assert definition["name"] == "cnn_long"
    fixed = definition["command"][3:-1]
    assert {"model=cnn", "objective=val_loss", "name=cnn_long", "trainer.max_epochs=10"} <= set(
        fixed
    )
    assert not [o for o in fixed if o.startswith(("hydra.sweeper", "hparams_search"))]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("+hydra.sweeper.layers.params.seed='choice(1,2)'", "one parent config node"),
        ("hparams_search=nope", "hparams_search"),
        ("objective=acc_vs_params", "W&B Sweeps optimise one metric"),
    ],
)
@pytest.mark.slow  # the CLI as a process
def test_cli_refuses_what_it_cannot_express(
    override: str, message: str, isolated_env: dict[str, str]
) -> None:
    result = export("hparams_search=mlp_optuna", override, env=isolated_env)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert message in result.stderr


def test_an_architecture_choice_is_refused_and_a_sweep_override_is_a_parameter() -> None:
    """W&B Sweeps have no conditional parameters: the MLP's layers cannot apply to a CNN."""
    with pytest.raises(ConfigError, match="choice model=cnn: the search also samples"):
        wandb_sweep(ROOT / "configs", ["hparams_search=mlp_optuna", "model=choice(mlp,cnn)"])
    definition = wandb_sweep(
        ROOT / "configs", ["hparams_search=mlp_optuna", "model.optimizer.lr=choice(0.1,0.2)"]
    )
    assert definition["parameters"]["model.optimizer.lr"] == {"values": [0.1, 0.2]}


def test_a_conditional_space_is_refused_in_one_paragraph() -> None:
    with pytest.raises(ConfigError, match="W&B Sweeps has no conditional parameters"):
        wandb_sweep(ROOT / "configs", ["hparams_search=arch_optuna"])
