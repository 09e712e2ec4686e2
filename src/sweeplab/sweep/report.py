"""What a sweep leaves in its directory: optimization_results.yaml, trials.csv, report.md and
plots. Rewritten from the study after every sweep (and when one stops early), so the files
always describe every trial the storage holds."""

from __future__ import annotations

import csv
import logging
import math
import os
import warnings
from functools import partial
from pathlib import Path
from typing import Any

import optuna
from omegaconf import OmegaConf
from optuna.trial import FrozenTrial, TrialState

from sweeplab.sweep import study as stored

log = logging.getLogger(__name__)

RESULTS_FILE = "optimization_results.yaml"
TRIALS_FILE = "trials.csv"
REPORT_FILE = "report.md"


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    try:
        return study.best_trial
    except (ValueError, RuntimeError):  # no complete trial yet, or several objectives
        return None


def reported_trials(study: optuna.Study) -> list[FrozenTrial]:
    # Surplus asks (two workers racing for the last place) were never run: not trials to report.
    return [t for t in study.get_trials(deepcopy=False) if not t.user_attrs.get(stored.SURPLUS)]


def is_multi_objective(study: optuna.Study) -> bool:
    return len(study.directions) > 1


def objective_names(study: optuna.Study) -> list[str]:
    """The objectives' metric names (``value`` for an unnamed single objective)."""
    with warnings.catch_warnings():  # metric names are experimental since Optuna 3.2
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        names = study.metric_names
    return names or (
        ["value"]
        if len(study.directions) == 1
        else [f"value_{i}" for i in range(len(study.directions))]
    )


def value_columns(study: optuna.Study) -> list[str]:
    """Column names of the trials' values in tables: ``value``, or one per objective."""
    return objective_names(study) if is_multi_objective(study) else ["value"]


def pareto_trials(study: optuna.Study) -> list[FrozenTrial]:
    """The non-dominated complete trials of a multi-objective study, by number."""
    return sorted(study.best_trials, key=lambda t: t.number)


def write_all(study: optuna.Study, sweep_dir: Path) -> list[Path]:
    """Write every result file; a plot that cannot be drawn is skipped with a warning.
    Returns the plots written."""
    base_overrides = study.user_attrs.get(stored.BASE_OVERRIDES, [])
    trials = reported_trials(study)
    best = best_trial(study)
    write_results(study, trials, best, sweep_dir / RESULTS_FILE, base_overrides)
    write_trials_csv(trials, sweep_dir / TRIALS_FILE, value_columns(study))
    plots = write_plots(study, sweep_dir)
    write_markdown(study, trials, best, sweep_dir / REPORT_FILE, base_overrides, plots)
    return [sweep_dir / plot for plot in plots]


def best_overrides(best: FrozenTrial, base_overrides: list[str]) -> list[str]:
    return [*base_overrides, *best.user_attrs.get(stored.OVERRIDES, [])]


def _replace(path: Path, write: Any) -> None:
    """Write through a temporary file: a reader (or a killed writer) never sees half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    write(tmp)
    os.replace(tmp, path)


def write_results(
    study: optuna.Study,
    trials: list[FrozenTrial],
    best: FrozenTrial | None,
    path: Path,
    base_overrides: list[str],
) -> None:
    counts = {state.name.lower(): 0 for state in TrialState}
    for trial in trials:
        counts[trial.state.name.lower()] += 1
    directions = [d.name.lower() for d in study.directions]
    results: dict[str, Any] = {
        "name": "optuna",
        "study_name": study.study_name,
        "direction": directions if len(directions) > 1 else directions[0],
        "objectives": objective_names(study),
        "trials": counts,
        # validation epochs run by all trials together: what pruning saves
        "epochs_total": sum(stored.epochs_run(t) for t in trials),
    }
    if is_multi_objective(study):
        # The Pareto set, as the stock Optuna sweeper writes it (params, values), with each
        # trial's number and the overrides that retrain it (best_of=<dir> trial=<number>).
        results["solutions"] = [
            {
                "number": t.number,
                "params": t.params,
                "values": t.values,
                "overrides": best_overrides(t, base_overrides),
            }
            for t in pareto_trials(study)
        ]
    if best is not None:
        results |= {
            "best_trial": best.number,
            "best_value": best.value,
            "best_params": best.params,
            "best_overrides": best_overrides(best, base_overrides),
        }
    _replace(path, lambda tmp: OmegaConf.save(OmegaConf.create(results), tmp))


def _duration(trial: FrozenTrial) -> float | None:
    if trial.datetime_start and trial.datetime_complete:
        return round((trial.datetime_complete - trial.datetime_start).total_seconds(), 1)
    return None


def _param_names(trials: list[FrozenTrial]) -> list[str]:
    names: dict[str, None] = {}
    for trial in trials:
        names.update(dict.fromkeys(trial.params))
    return list(names)


def trial_rows(
    trials: list[FrozenTrial], objectives: list[str]
) -> tuple[list[str], list[list[Any]]]:
    """One row per trial: number, state, the value of each objective, epochs, duration, every
    parameter ("" where a trial does not have it), error, duplicate_of, retry_of, worker."""
    params = _param_names(trials)
    header = ["number", "state", *objectives, "epochs", "duration_s", *params]
    header += ["error", "duplicate_of", "retry_of", "worker"]
    rows = []
    for t in trials:
        row = [t.number, t.state.name, *(t.values or [None] * len(objectives))]
        row += [stored.epochs_run(t), _duration(t)]
        row += [t.params.get(name, "") for name in params]  # "" = inactive parameter
        row += [stored.error_of(t) or "", t.user_attrs.get(stored.DUPLICATE_OF, "")]
        retry = stored.retry_of(t)
        row += ["" if retry is None else retry, t.user_attrs.get(stored.WORKER, "")]
        rows.append(row)
    return header, rows


def write_trials_csv(trials: list[FrozenTrial], path: Path, objectives: list[str]) -> None:
    header, rows = trial_rows(trials, objectives)

    def write(tmp: Path) -> None:
        with tmp.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            writer.writerows(rows)

    _replace(path, write)


def write_plots(study: optuna.Study, sweep_dir: Path) -> list[str]:
    """Optimization history, parameter importances, parallel coordinates (and the Pareto
    front of a multi-objective study), as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as plots

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    # Parameters that never changed explain nothing: leave them out of both parameter plots.
    varied = _varied_params(complete)
    in_every_trial = [p for p in varied if all(p in t.params for t in complete)]
    names = objective_names(study)
    # With several objectives the usual plots follow the first one, and the Pareto front
    # (dominated trials drawn apart) shows the trade-off.
    multi = is_multi_objective(study)
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
            axes = draw(study)
            figure = axes.figure if hasattr(axes, "figure") else axes[0].figure
            figure.set_size_inches(10, 6)
            for ax in figure.axes:  # long parameter names: in full, slanted, with room
                _untruncate(ax, varied)
                ax.tick_params(axis="x", labelrotation=20)
            figure.tight_layout()
            _replace(sweep_dir / name, partial(figure.savefig, dpi=100, format="png"))
            plt.close(figure)
            written.append(name)
        except Exception as e:  # a plot is a convenience: never lose the sweep over it
            log.warning("Could not draw %s: %s", name, e)
    return written


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


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.4g}"
    return "" if value is None else str(value).replace("|", "\\|")


def write_markdown(
    study: optuna.Study,
    trials: list[FrozenTrial],
    best: FrozenTrial | None,
    path: Path,
    base_overrides: list[str],
    plots: list[str],
) -> None:
    states = [t.state.name.lower() for t in trials]
    names = objective_names(study)
    goals = ", ".join(f"{d.name.lower()} {n}" for d, n in zip(study.directions, names, strict=True))
    lines = [
        f"# Sweep report: {study.study_name}",
        "",
        f"{len(trials)} trials: "
        + ", ".join(f"{states.count(s)} {s}" for s in sorted(set(states))),
        f"Objective: {goals}. Validation epochs run in all: "
        f"{sum(stored.epochs_run(t) for t in trials)}.",
        "",
    ]
    if is_multi_objective(study):
        pareto = pareto_trials(study)
        varied = _param_names(pareto)
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
        overrides = " ".join(best_overrides(best, base_overrides))
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
    params = _param_names(trials)
    columns = value_columns(study)
    lines += [
        "## Trials",
        "",
        "| # | state | " + " | ".join([*columns, "epochs", "seconds", *params]) + " |",
        "|" + " --- |" * (4 + len(columns) + len(params)),
    ]
    for t in trials:
        row = [t.number, t.state.name.lower(), *(t.values or [None] * len(columns))]
        row += [stored.epochs_run(t), _duration(t)]
        row += [t.params.get(p) for p in params]
        lines.append("| " + " | ".join(_cell(v) for v in row) + " |")
    failed = [t for t in trials if stored.error_of(t)]
    if failed:
        lines += ["", "## Failures", ""]
        lines += [f"- trial {t.number}: {stored.error_of(t)}" for t in failed]
    if plots:
        lines += ["", "## Plots", "", *[f"![{p}]({p})" for p in plots]]
    _replace(path, lambda tmp: tmp.write_text("\n".join(lines) + "\n"))
