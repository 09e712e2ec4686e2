"""What a sweep leaves in its directory: optimization_results.yaml, trials.csv, report.md and
plots. Rewritten from the study after every sweep (and when one stops early), so the files
always describe every trial the storage holds. This module only writes: what it writes is
read from the study through queries.py."""

from __future__ import annotations

import csv
import logging
import math
import re
import shlex
import statistics
from collections.abc import Callable
from dataclasses import dataclass
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
    "choice_rows",
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
        # n_trials reached, or a stopping rule (timeout, patience, target)
        "stopped_by": queries.stopped_by(study),
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


@dataclass(frozen=True)
class _Plot:
    file: str
    draw: Callable[[], Any]  # returns the plot's axes
    params: list[str]  # the parameters it shows, by full name
    subset: str = ""  # the trials it shows, when not all: "model=cnn"


def write_plots(study: optuna.Study, sweep_dir: Path) -> list[str]:
    """Optimization history, parameter importances, parallel coordinates (and the Pareto
    front of a multi-objective study), as PNG. In a study that chooses among options with
    spaces of their own (``model`` in an architecture study), the history is coloured by
    option, and the two parameter plots are drawn for each option apart as well: its own
    parameters mean nothing next to another option's.

    Drawn with pyplot's backend as it is: without a display matplotlib picks Agg itself, and
    the backend is the process's to choose, not a report's."""
    import matplotlib.pyplot as plt

    complete = queries.complete_trials(study)
    written = []
    for plot in _plots(study, complete):
        try:
            # Optuna's matplotlib plots are experimental; PED-ANOVA's note on the target
            # is answered by the sign flip in _param_plots
            with experimental(), quiet.known_noise():
                axes = plot.draw()
            figure = axes.figure if hasattr(axes, "figure") else axes[0].figure
            figure.set_size_inches(10, 6)
            for ax in figure.axes:  # long parameter names: in full, slanted, with room
                _untruncate(ax, plot.params)
                ax.tick_params(axis="x", labelrotation=20)
            if plot.subset:
                _retitle(figure.axes[0], plot.subset)
            if plot.file.startswith("parallel_coordinates"):
                _readable_lines(figure)
            figure.tight_layout()
            write_atomic(sweep_dir / plot.file, partial(figure.savefig, dpi=100, format="png"))
            plt.close(figure)
            written.append(plot.file)
        except Exception as e:  # a plot is a convenience: never lose the sweep over it
            log.warning("Could not draw %s: %s", plot.file, e)
    return written


def _plots(study: optuna.Study, complete: list[FrozenTrial]) -> list[_Plot]:
    from optuna.visualization import matplotlib as plots

    if not complete:
        return []
    names = queries.objective_names(study)
    multi = queries.is_multi_objective(study)
    keys = [] if multi else sorted(queries.choice_keys(study), key=lambda k: k != "model")
    if keys:  # one colour per option: which architecture reached which value, and when
        history = partial(_history_by_choice, study, complete, keys[0])
    else:
        # With several objectives the usual plots follow the first one, and the Pareto
        # front (dominated trials drawn apart) shows the trade-off.
        first = {"target": lambda t: t.values[0], "target_name": names[0]} if multi else {}
        history = partial(plots.plot_optimization_history, study, **first)
    found = [_Plot("optimization_history.png", history, [])]
    found += _param_plots(study, complete, "", shared_only=bool(keys))
    for key in keys:
        for option, mine in _by_option(complete, key).items():
            found += _param_plots(_study_of(study, mine), mine, f"{key}={option}")
    if multi:
        pareto = partial(plots.plot_pareto_front, study, target_names=names)
        found.append(_Plot("pareto_front.png", pareto, []))
    return found


def _param_plots(
    study: optuna.Study, complete: list[FrozenTrial], subset: str, *, shared_only: bool = False
) -> list[_Plot]:
    """Importances and parallel coordinates of the parameters that changed (one that never
    did explains nothing); ``shared_only``: only those every trial has. ``subset`` names the
    trials drawn ("model=cnn") when they are not all of the study's."""
    from optuna.visualization import matplotlib as plots

    varied = _varied_params(complete)
    in_every_trial = [p for p in varied if all(p in t.params for t in complete)]
    if len(complete) < 2 or not varied:
        return []
    names = queries.objective_names(study)
    multi = queries.is_multi_objective(study)
    first = {"target": lambda t: t.values[0], "target_name": names[0]} if multi else {}
    # Importance evaluators look for what makes a target low: flip a maximised one.
    sign = -1 if study.directions[0] == optuna.study.StudyDirection.MAXIMIZE else 1
    ranked = {"target": lambda t: sign * t.values[0], "target_name": names[0]} if multi else {}
    shown = in_every_trial if shared_only else varied
    importances = partial(plots.plot_param_importances, study, params=in_every_trial, **ranked)
    parallel = partial(plots.plot_parallel_coordinate, study, params=shown, **first)
    suffix = "_" + _slug(subset.replace("=", "-")) if subset else ""
    found = [_Plot(f"param_importances{suffix}.png", importances, in_every_trial, subset)]
    found.append(_Plot(f"parallel_coordinates{suffix}.png", parallel, shown, subset))
    return [plot for plot in found if plot.params]


def _study_of(study: optuna.Study, trials: list[FrozenTrial]) -> optuna.Study:
    """An in-memory study of some of ``study``'s trials, for Optuna's plots to draw; without
    Optuna's "A new study created in memory" line, which would only puzzle."""
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        part = optuna.create_study(directions=study.directions, study_name=study.study_name)
    finally:
        optuna.logging.set_verbosity(verbosity)
    part.add_trials(trials)
    return part


def _retitle(ax: Any, subset: str) -> None:
    """Add the trials' subset to Optuna's title, wherever Optuna placed it."""
    for loc in ("left", "center", "right"):
        if title := ax.get_title(loc=loc):
            ax.set_title(f"{title}: {subset} trials", loc=loc)


def _history_by_choice(study: optuna.Study, complete: list[FrozenTrial], key: str) -> Any:
    """Each trial's value by number, one colour per option of ``key``, and the best so far."""
    import matplotlib.pyplot as plt

    _, ax = plt.subplots()
    for option, mine in _by_option(complete, key).items():
        ax.scatter([t.number for t in mine], [t.value for t in mine], label=option, s=28)
    best = np.minimum if study.direction == optuna.study.StudyDirection.MINIMIZE else np.maximum
    ax.step(
        [t.number for t in complete],
        best.accumulate([t.value for t in complete]),
        where="post",
        color="#333333",
        label="best so far",
    )
    name = queries.objective_names(study)[0]
    ax.set(title=f"Optimization history by {key}", xlabel="Trial", ylabel=name)
    ax.legend(title=key)
    return ax


def _slug(text: str) -> str:
    """``text`` as part of a file name (a group key such as ``model/optimizer``)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


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


def choice_rows(
    study: optuna.Study, trials: list[FrozenTrial], key: str
) -> tuple[list[str], list[list[Any]]]:
    """Each option of a conditional choice side by side: trials, best value and trial, median
    seconds per epoch, the best trial's parameter count. The table of report.md and of the
    W&B study run."""
    best = queries.best_by_choice(study, key)
    header = [key, "trials", "best_value", "best_trial", "median_s_per_epoch", "parameters"]
    rows = []
    for option, ran in _by_option(trials, key).items():
        per_epoch = [
            d / e for t in ran if (d := queries.duration_s(t)) and (e := queries.epochs_run(t))
        ]
        top = best.get(option)
        row = [option, len(ran), top.value if top else None, top.number if top else None]
        row += [statistics.median(per_epoch) if per_epoch else None]
        row += [top.user_attrs.get(stored.MODEL_PARAMS) if top else None]
        rows.append(row)
    return header, rows


def _by_option(trials: list[FrozenTrial], key: str) -> dict[str, list[FrozenTrial]]:
    """The trials that chose each option of ``key``, by option name."""
    chosen: dict[str, list[FrozenTrial]] = {}
    for trial in trials:
        if key in trial.params:
            chosen.setdefault(str(trial.params[key]), []).append(trial)
    return dict(sorted(chosen.items()))


def _choice_table(
    study: optuna.Study, trials: list[FrozenTrial], key: str, sweep_dir: Path
) -> list[str]:
    title = "architecture" if key == "model" else key
    _, rows = choice_rows(study, trials, key)
    return [
        f"## Per {title}",
        "",
        f"Retrain one: `python train.py best_of={sweep_dir} {key}=<option>`.",
        "",
        f"| {key} | trials | best value | best trial | median s/epoch | parameters |",
        "| --- | --- | --- | --- | --- | --- |",
        *["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows],
        "",
    ]


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
    if copies := sum(1 for t in trials if queries.warm_started(t)):
        reused += f"; {copies} copied from another study (warm start, not run here)"
    if retries := [t for t in trials if stored.EPOCHS_LOST in t.user_attrs]:
        lost = sum(int(t.user_attrs[stored.EPOCHS_LOST]) for t in retries)
        reused += f"; {len(retries)} retried after their worker died ({lost} epoch(s) lost)"
    lines = [
        f"# Sweep report: {study.study_name}",
        "",
        f"{len(trials)} trials: "
        + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()) if n)
        + reused,
        f"Objective: {goals}. Validation epochs run in all: {queries.epochs_total(trials)}.",
        *([f"Stopped: {reason}."] if (reason := queries.stopped_by(study)) else []),
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
