"""What a sweep leaves in its directory: optimization_results.yaml, trials.csv, report.md and
plots. Rewritten from the study after every sweep (and when one stops early), so the files
always describe every trial the storage holds. This module only writes: what it writes is
read from the study through queries.py."""

from __future__ import annotations

import csv
import logging
import math
import shlex
import statistics
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from omegaconf import OmegaConf
from optuna.distributions import BaseDistribution, distribution_to_json
from optuna.trial import FrozenTrial

from sweeplab import quiet
from sweeplab.compat.optuna import experimental
from sweeplab.files import write_atomic, write_text_atomic
from sweeplab.redaction import redact
from sweeplab.sweep import queries
from sweeplab.sweep import study as stored
from sweeplab.sweep.progress import format_number

__all__ = [
    "REPORT_FILE",
    "BEST_PER_CHOICE",
    "RESULTS_FILE",
    "TRIALS_FILE",
    "pruner_name",
    "shell_command",
    "write_all",
    "write_markdown",
    "write_plots",
    "write_results",
    "write_trials_csv",
]

log = logging.getLogger(__name__)

RESULTS_FILE = "optimization_results.yaml"
BEST_PER_CHOICE = "best_per_choice"  # in RESULTS_FILE: {key: {option: its best trial}}
TRIALS_FILE = "trials.csv"
REPORT_FILE = "report.md"


def pruner_name(pruner: optuna.pruners.BasePruner) -> str:
    """The pruner as a report names it: its class, or ``none`` when pruning is off."""
    return "none" if isinstance(pruner, optuna.pruners.NopPruner) else type(pruner).__name__


def shell_command(words: list[str]) -> str:
    """A command line to paste into a shell: each word quoted where the shell would change
    it (``'model.net.filters=[64]'``). ``sweeplab best`` and report.md print the same."""
    return " ".join(shlex.quote(w) for w in words)


def write_all(study: optuna.Study, sweep_dir: Path, storage: str | None = None) -> list[Path]:
    """Write every result file; a plot that cannot be drawn is skipped with a warning.
    ``storage`` is recorded (password masked) so tools find the study from the directory.
    Returns the plots written."""
    base_overrides = queries.base_overrides(study)
    trials = queries.reported_trials(study)
    best = queries.best_trial(study)
    write_results(study, trials, best, sweep_dir / RESULTS_FILE, base_overrides, storage)
    write_trials_csv(trials, sweep_dir / TRIALS_FILE, queries.value_columns(study))
    plots = write_plots(study, sweep_dir)
    write_markdown(study, trials, best, sweep_dir / REPORT_FILE, base_overrides, plots)
    return [sweep_dir / plot for plot in plots]


def write_results(
    study: optuna.Study,
    trials: list[FrozenTrial],
    best: FrozenTrial | None,
    path: Path,
    base_overrides: list[str],
    storage: str | None = None,
) -> None:
    directions = [d.name.lower() for d in study.directions]
    results: dict[str, Any] = {
        "name": "optuna",
        "study_name": study.study_name,
        # where the study is, for `sweeplab dashboard <dir>`; a password is never written
        **({"storage": redact(storage)} if storage else {}),
        "direction": directions if len(directions) > 1 else directions[0],
        "objectives": queries.objective_names(study),
        "trials": queries.state_counts(trials),
        # validation epochs run by all trials together: what pruning saves
        "epochs_total": queries.epochs_total(trials),
        # what best_of checks the overrides below against before running them
        "base_overrides": base_overrides,
        "search_space": _as_json(queries.search_space(study)),
    }
    if queries.is_multi_objective(study):
        # The Pareto set, as the stock Optuna sweeper writes it (params, values), with each
        # trial's number and the overrides that retrain it (best_of=<dir> trial=<number>).
        results["solutions"] = [
            {
                "number": t.number,
                "params": t.params,
                "values": t.values,
                "overrides": queries.best_overrides(t, base_overrides),
            }
            for t in queries.pareto_trials(study)
        ]
    if best is not None:
        results |= {
            "best_trial": best.number,
            "best_value": best.value,
            "best_params": best.params,
            "best_overrides": queries.best_overrides(best, base_overrides),
        }
    by_choice = {
        key: {
            option: {
                "number": t.number,
                "values": t.values,
                "params": t.params,
                "overrides": queries.best_overrides(t, base_overrides),
            }
            for option, t in queries.best_by_choice(study, key).items()
        }
        for key in ([] if queries.is_multi_objective(study) else queries.choice_keys(study))
    }
    if by_choice:  # best_of=<dir> model=cnn retrains the best CNN
        results[BEST_PER_CHOICE] = by_choice
    write_atomic(path, lambda tmp: OmegaConf.save(OmegaConf.create(results), tmp))


def _as_json(space: dict[str, BaseDistribution] | None) -> dict[str, str] | None:
    return None if space is None else {k: distribution_to_json(d) for k, d in space.items()}


def write_trials_csv(trials: list[FrozenTrial], path: Path, objectives: list[str]) -> None:
    header, rows = queries.trial_rows(trials, objectives)

    def write(tmp: Path) -> None:
        with tmp.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            writer.writerows(rows)

    write_atomic(path, write)


def write_plots(study: optuna.Study, sweep_dir: Path) -> list[str]:
    """Optimization history, parameter importances, parallel coordinates (and the Pareto
    front of a multi-objective study), as PNG.

    Drawn with pyplot's backend as it is: without a display matplotlib picks Agg itself, and
    the backend is the process's to choose, not a report's."""
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as plots

    complete = queries.complete_trials(study)
    # Parameters that never changed explain nothing: leave them out of both parameter plots.
    varied = _varied_params(complete)
    in_every_trial = [p for p in varied if all(p in t.params for t in complete)]
    names = queries.objective_names(study)
    # With several objectives the usual plots follow the first one, and the Pareto front
    # (dominated trials drawn apart) shows the trade-off.
    multi = queries.is_multi_objective(study)
    first = {"target": lambda t: t.values[0], "target_name": names[0]} if multi else {}
    # Importance evaluators look for what makes a target low: flip a maximised one.
    sign = -1 if study.directions[0] == optuna.study.StudyDirection.MAXIMIZE else 1
    ranked = {"target": lambda t: sign * t.values[0], "target_name": names[0]} if multi else {}
    specs = [
        ("optimization_history.png", partial(plots.plot_optimization_history, **first), 1),
        (
            "param_importances.png",
            partial(plots.plot_param_importances, params=in_every_trial, **ranked),
            2,
        ),
        (
            "parallel_coordinates.png",
            partial(plots.plot_parallel_coordinate, params=varied, **first),
            2,
        ),
    ]
    if multi:
        specs.append(("pareto_front.png", partial(plots.plot_pareto_front, target_names=names), 1))
    written = []
    for name, draw, needed in specs:
        if len(complete) < needed or (name.startswith("param") and not varied):
            continue
        try:
            # Optuna's matplotlib plots are experimental; PED-ANOVA's note on the target
            # is answered by the sign flip above
            with experimental(), quiet.known_noise():
                axes = draw(study)
            figure = axes.figure if hasattr(axes, "figure") else axes[0].figure
            figure.set_size_inches(10, 6)
            for ax in figure.axes:  # long parameter names: in full, slanted, with room
                _untruncate(ax, varied)
                ax.tick_params(axis="x", labelrotation=20)
            if name == "parallel_coordinates.png":
                _readable_lines(figure)
            figure.tight_layout()
            write_atomic(sweep_dir / name, partial(figure.savefig, dpi=100, format="png"))
            plt.close(figure)
            written.append(name)
        except Exception as e:  # a plot is a convenience: never lose the sweep over it
            log.warning("Could not draw %s: %s", name, e)
    return written


def _readable_lines(figure: Any) -> None:
    """Optuna draws parallel coordinates in blues on a light grey background, where the
    worst trials fade out, and puts each axis's labels on the lines. Draw them on white in a
    colour map dark at the best end and still saturated at the worst, and give the labels a
    white ground of their own."""
    from matplotlib import colormaps
    from matplotlib.collections import LineCollection
    from matplotlib.colors import ListedColormap

    plasma = colormaps["plasma"]
    for ax in figure.axes:
        ax.set_facecolor("white")
        ax.grid(False)
        for spine in ax.spines.values():  # the style's white axis lines, visible on white
            spine.set_color("#555555")
        ax.tick_params(colors="#333333")
        for lines in ax.collections:
            if isinstance(lines, LineCollection) and lines.get_array() is not None:
                # best at the dark end, as Optuna's blues have it; orange, not yellow, at the other
                shades = plasma(np.linspace(0.0, 0.8, 256))
                reverse = lines.get_cmap().name.endswith("_r")
                lines.set_cmap(ListedColormap(shades if reverse else shades[::-1]))
                lines.set_linewidth(1.6)
        for label in [*ax.get_yticklabels(), *ax.texts]:
            label.set_bbox({"facecolor": "white", "alpha": 0.85, "edgecolor": "none", "pad": 1})


def _untruncate(ax: Any, names: list[str]) -> None:
    """Optuna shortens long parameter names on the parallel-coordinates axis ("model.net.hid...");
    put the full names back where the labels are, in order, prefixes of them."""
    labels = [t.get_text() for t in ax.get_xticklabels()]
    full = ["Objective Value", *sorted(names)]
    if len(labels) == len(full) and all(
        name.startswith(label.removesuffix("...")) for label, name in zip(labels, full, strict=True)
    ):
        ax.set_xticks(ax.get_xticks(), full)


def _varied_params(trials: list[FrozenTrial]) -> list[str]:
    values: dict[str, set[str]] = {}
    for trial in trials:
        for name, value in trial.params.items():
            values.setdefault(name, set()).add(repr(value))
    return [name for name, seen in values.items() if len(seen) > 1]


def _choice_table(
    study: optuna.Study, trials: list[FrozenTrial], key: str, sweep_dir: Path
) -> list[str]:
    """Each option of a conditional choice side by side: trials, best value and trial, median
    seconds per epoch, the best trial's parameter count."""
    best = queries.best_by_choice(study, key)
    title = "architecture" if key == "model" else key
    lines = [
        f"## Per {title}",
        "",
        f"Retrain one: `python train.py best_of={sweep_dir} {key}=<option>`.",
        "",
        f"| {key} | trials | best value | best trial | median s/epoch | parameters |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for option in sorted({str(t.params[key]) for t in trials if key in t.params}):
        ran = [t for t in trials if str(t.params.get(key)) == option]
        per_epoch = [
            d / e for t in ran if (d := queries.duration_s(t)) and (e := queries.epochs_run(t))
        ]
        top = best.get(option)
        row = [option, len(ran), top.value if top else None, top.number if top else None]
        row += [statistics.median(per_epoch) if per_epoch else None]
        row += [top.user_attrs.get(stored.MODEL_PARAMS) if top else None]
        lines.append("| " + " | ".join(_cell(v) for v in row) + " |")
    return [*lines, ""]


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else format_number(value, ".4g")
    return "" if value is None else str(value).replace("|", "\\|")


def write_markdown(
    study: optuna.Study,
    trials: list[FrozenTrial],
    best: FrozenTrial | None,
    path: Path,
    base_overrides: list[str],
    plots: list[str],
) -> None:
    counts = queries.state_counts(trials)
    names = queries.objective_names(study)
    goals = ", ".join(f"{d.name.lower()} {n}" for d, n in zip(study.directions, names, strict=True))
    repeats = sum(1 for t in trials if stored.DUPLICATE_OF in t.user_attrs)
    reused = f"; {repeats} complete by repeating an earlier trial (value reused)" if repeats else ""
    lines = [
        f"# Sweep report: {study.study_name}",
        "",
        f"{len(trials)} trials: "
        + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()) if n)
        + reused,
        f"Objective: {goals}. Validation epochs run in all: {queries.epochs_total(trials)}.",
        "",
    ]
    if queries.is_multi_objective(study):
        pareto = queries.pareto_trials(study)
        varied = queries.param_names(pareto)
        lines += [
            f"## Pareto set: {len(pareto)} trial(s)",
            "",
            "No trial is better on every objective than these. Retrain one with:",
            "",
            "```bash",
            f"python train.py best_of={path.parent} trial=<number> trainer.max_epochs=50",
            "```",
            "",
            "| # | " + " | ".join([*names, *varied]) + " |",
            "|" + " --- |" * (1 + len(names) + len(varied)),
            *[
                "| "
                + " | ".join(
                    _cell(v) for v in [t.number, *t.values, *(t.params.get(p) for p in varied)]
                )
                + " |"
                for t in pareto
            ],
            "",
        ]
    if best is not None:
        overrides = shell_command(queries.best_overrides(best, base_overrides))
        lines += [
            f"## Best: trial {best.number}, value {best.value:.4f}",
            "",
            "```bash",
            f"python train.py best_of={path.parent} trainer.max_epochs=50",
            f"# or by hand: python train.py {overrides}",
            "```",
            "",
            "| parameter | value |",
            "| --- | --- |",
            *[f"| {k} | {_cell(v)} |" for k, v in best.params.items()],
            "",
        ]
    if not queries.is_multi_objective(study):
        for key in queries.choice_keys(study):
            lines += _choice_table(study, trials, key, path.parent)
    params = queries.param_names(trials)
    columns = queries.value_columns(study)
    lines += [
        "## Trials",
        "",
        "| # | state | " + " | ".join([*columns, "epochs", "seconds", *params]) + " |",
        "|" + " --- |" * (4 + len(columns) + len(params)),
    ]
    for t in trials:
        row = [t.number, t.state.name.lower(), *(t.values or [None] * len(columns))]
        row += [queries.epochs_run(t), queries.duration_s(t)]
        row += [t.params.get(p) for p in params]
        lines.append("| " + " | ".join(_cell(v) for v in row) + " |")
    failed = [t for t in trials if queries.error_of(t)]
    if failed:
        lines += ["", "## Failures", ""]
        lines += [f"- trial {t.number}: {queries.error_of(t)}" for t in failed]
    if plots:
        lines += ["", "## Plots", "", *[f"![{p}]({p})" for p in plots]]
    write_text_atomic(path, "\n".join(lines) + "\n")
