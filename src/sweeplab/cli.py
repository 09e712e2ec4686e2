"""The ``sweeplab`` command: train, sweep and evaluate, look at sweeps and compare runs.

sweeplab init my_research                      # a starter repository of your own models
sweeplab train model=mynet                     # train.py's arguments, from a directory
sweeplab train -m hparams_search=mynet_optuna  #   holding configs/ (sweeplab.user_repo)
sweeplab eval ckpt_path=logs/runs/<name>/<time>/checkpoints/best.ckpt
sweeplab best logs/sweeps/mlp_optuna          # the best overrides (or the Pareto set)
sweeplab best sqlite:///path/optuna.db --study mlp_optuna
sweeplab best logs/sweeps/arch_optuna --per-choice model   # the best of each architecture
sweeplab compare logs/runs/mlp_baseline/<time> logs/runs/mlp_optuna/<time>
sweeplab dashboard logs/sweeps/mlp_optuna       # optuna-dashboard on the sweep's study
sweeplab wandb-sweep hparams_search=cnn_optuna > sweeps/cnn_bayes.yaml
sweeplab fail-stale journal:///shared/study.log --older-than 3600   # trials of dead workers

A malformed argument (a port out of range, a negative duration) exits with status 2, as
argparse does; what an argument points at (a missing sweep, an empty database, a server that
does not answer) exits with status 1. Both print one paragraph, never a traceback.
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
from pathlib import Path
from typing import NoReturn

import optuna

from sweeplab import app
from sweeplab.dashboard import serve
from sweeplab.errors import ConfigError, SweeplabError, exit_with
from sweeplab.scaffold import write_starter
from sweeplab.seeds import comparison_table
from sweeplab.sweep.best import load_best, load_best_per_choice
from sweeplab.sweep.leases import fail_stale
from sweeplab.sweep.storage import open_existing_storage, study_name_in
from sweeplab.sweep.wandb_sweeps import to_yaml, wandb_sweep

__all__ = ["main"]

SOURCE_HELP = "a sweep directory, or an Optuna storage URL"


class _Parser(argparse.ArgumentParser):
    """argparse, with its refusal of a malformed argument as one paragraph (status 2)."""

    def error(self, message: str) -> NoReturn:
        exit_with(f"{self.prog}: {message}. See `{self.prog} --help`.", status=2)


def port(text: str) -> int:
    """A TCP port to listen on; 0 lets the system pick a free one."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(
            f"{text} is not a TCP port: use 1-65535, or 0 for a free one"
        )
    return value


def seconds(text: str) -> float:
    """A duration of zero or more seconds."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"{text} is not a duration: give 0 or more seconds")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="sweeplab", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name, what in (("train", "train once, or sweep with -m"), ("eval", "test a checkpoint")):
        # listed for --help; main() hands what follows to Hydra (-m, --config-dir, overrides)
        commands.add_parser(name, help=f"{what} (Hydra's arguments: sweeplab {name} --help)")
    init = commands.add_parser("init", help="write a starter repository of your own models")
    init.add_argument("directory", type=Path, help="a new (or empty) directory")
    best = commands.add_parser("best", help="print a sweep's best parameters as overrides")
    best.add_argument("source", help=SOURCE_HELP)
    best.add_argument("--study", help="the study name, when the storage holds several")
    best.add_argument(
        "--per-choice",
        metavar="KEY",
        help="the best trial of each option of a conditional choice (model in arch_optuna)",
    )
    compare = commands.add_parser("compare", help="compare runs' accuracy over their seeds")
    compare.add_argument("run_dirs", nargs="+", type=Path, help="run directories of train.py")
    dashboard = commands.add_parser("dashboard", help="serve optuna-dashboard on a sweep")
    dashboard.add_argument("source", help=SOURCE_HELP)
    dashboard.add_argument("--port", type=port, default=8080, help="0 picks a free port")
    dashboard.add_argument(
        "--host", default="127.0.0.1", help="0.0.0.0 to serve other machines (no login!)"
    )
    dashboard.add_argument(
        "--allow-changes",
        action="store_true",
        help="let the dashboard change and delete studies (read-only without it)",
    )
    export = commands.add_parser(
        "wandb-sweep", help="write a search space as a W&B Sweeps definition (YAML)"
    )
    export.add_argument("overrides", nargs="+", help="hparams_search=NAME and other overrides")
    export.add_argument("--name", help="the W&B sweep's name (default: <model>_bayes)")
    export.add_argument("--config-dir", type=Path, default=Path("configs"))
    stale = commands.add_parser(
        "fail-stale",
        help="fail RUNNING trials whose worker is gone, and queue their parameters again",
    )
    stale.add_argument("source", help=SOURCE_HELP)
    stale.add_argument("--study", help="the study name, when the storage holds several")
    stale.add_argument(
        "--older-than",
        type=seconds,
        metavar="SECONDS",
        help="also fail trials running longer than this, on any host (default: only trials "
        "of workers on this host whose process is gone)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] in (["train"], ["eval"]):  # exits as the root train.py and eval.py do
        (app.train if argv[0] == "train" else app.evaluate)(argv[1:])
        return 0
    args = _parser().parse_args(argv)
    try:
        if args.command == "best":
            _best(args.source, args.study, args.per_choice)
        elif args.command == "wandb-sweep":
            definition = wandb_sweep(args.config_dir, args.overrides, args.name)
            command_line = shlex.join(["sweeplab", "wandb-sweep", *args.overrides])
            print(to_yaml(definition, command_line), end="")
        elif args.command == "dashboard":
            serve(args.source, args.host, args.port, args.allow_changes)
        elif args.command == "fail-stale":
            _fail_stale(args.source, args.study, args.older_than)
        elif args.command == "init":
            _init(args.directory)
        else:
            print(comparison_table(_run_dirs(args.run_dirs)))
    except SweeplabError as e:
        exit_with(e)
    except OSError as e:  # a file that vanished or cannot be read while being read
        if e.filename is None:
            raise
        exit_with(SweeplabError(f"Cannot read {e.filename}: {e.strerror}."))
    return 0


def _best(source: str, study: str | None, per_choice: str | None) -> None:
    if per_choice is not None:
        for trial in load_best_per_choice(source, per_choice, study):
            print(trial.describe())
            print(trial.command_line())
        return
    found = load_best(source, study)
    if len(found[0].values) == 1:  # the overrides alone on stdout, ready to paste
        print(found[0].describe(), file=sys.stderr)
        print(found[0].command_line())
        return
    print(f"# Pareto set of {len(found)} trials (best_of=... trial=<number>)")
    for trial in found:
        print(trial.describe())
        print(trial.command_line())


def _init(directory: Path) -> None:
    written = write_starter(directory)
    print("\n".join(str(directory / path) for path in written))
    print(f"Next: cd {directory} and run the commands in its README.md.", file=sys.stderr)


def _fail_stale(source: str, study_name: str | None, older_than_s: float | None) -> None:
    storage = open_existing_storage(source)
    name = study_name_in(storage, source, study_name)
    study = optuna.load_study(study_name=name, storage=storage)
    failed = fail_stale(study, storage, older_than_s)
    for trial in failed:
        print(trial.describe())
    if not failed:
        print(f"Study {study.study_name}: no stale running trial.", file=sys.stderr)


def _run_dirs(paths: list[Path]) -> list[Path]:
    for path in paths:
        if not path.is_dir():
            state = "is a file" if path.exists() else "does not exist"
            raise ConfigError(
                f"{path} {state}: sweeplab compare takes run directories of train.py "
                "(logs/runs/<name>/<time>, each with its metrics.json or seeds.json)."
            )
    return paths


if __name__ == "__main__":
    sys.exit(main())
