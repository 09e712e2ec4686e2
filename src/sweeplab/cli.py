"""The ``sweeplab`` command: look at sweeps and compare runs.

sweeplab best logs/sweeps/mlp_optuna          # the best overrides (or the Pareto set)
sweeplab best sqlite:///path/optuna.db --study mlp_optuna
sweeplab compare logs/runs/mlp_baseline/<time> logs/runs/mlp_optuna/<time>
sweeplab dashboard logs/sweeps/mlp_optuna       # optuna-dashboard on the sweep's study
sweeplab wandb-sweep hparams_search=cnn_optuna > sweeps/cnn_bayes.yaml
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from sweeplab.dashboard import serve
from sweeplab.errors import SweeplabError, exit_with
from sweeplab.seeds import comparison_table
from sweeplab.sweep.best import load_best
from sweeplab.sweep.wandb_sweeps import to_yaml, wandb_sweep

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sweeplab", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    best = commands.add_parser("best", help="print a sweep's best parameters as overrides")
    best.add_argument("source", help="a sweep directory, or an Optuna storage URL")
    best.add_argument("--study", help="the study name, when the storage holds several")
    compare = commands.add_parser("compare", help="compare runs' accuracy over their seeds")
    compare.add_argument("run_dirs", nargs="+", type=Path, help="run directories of train.py")
    dashboard = commands.add_parser("dashboard", help="serve optuna-dashboard on a sweep")
    dashboard.add_argument("source", help="a sweep directory, or an Optuna storage URL")
    dashboard.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    dashboard.add_argument(
        "--host", default="127.0.0.1", help="0.0.0.0 to serve other machines (no login!)"
    )
    export = commands.add_parser(
        "wandb-sweep", help="write a search space as a W&B Sweeps definition (YAML)"
    )
    export.add_argument("overrides", nargs="+", help="hparams_search=NAME and other overrides")
    export.add_argument("--name", help="the W&B sweep's name (default: <model>_bayes)")
    export.add_argument("--config-dir", type=Path, default=Path("configs"))
    args = parser.parse_args(argv)
    try:
        if args.command == "best":
            found = load_best(args.source, args.study)
            if len(found[0].values) == 1:  # the overrides alone on stdout, ready to paste
                print(found[0].describe(), file=sys.stderr)
                print(found[0].command_line())
            else:
                print(f"# Pareto set of {len(found)} trials (best_of=... trial=<number>)")
                for trial in found:
                    print(trial.describe())
                    print(trial.command_line())
        elif args.command == "wandb-sweep":
            definition = wandb_sweep(args.config_dir, args.overrides, args.name)
            command_line = shlex.join(["sweeplab", "wandb-sweep", *args.overrides])
            print(to_yaml(definition, command_line), end="")
        elif args.command == "dashboard":
            serve(args.source, args.host, args.port)
        else:
            print(comparison_table(args.run_dirs))
    except SweeplabError as e:
        exit_with(e)
    except FileNotFoundError as e:
        exit_with(SweeplabError(f"{e.filename} does not exist: {e.strerror}."))
    return 0


if __name__ == "__main__":
    sys.exit(main())
