"""One W&B run per study (``job_type=study``, in the study's group next to its trials): the
trials table, the per-architecture table of a study across architectures, the best
configuration and the sweep's plots, so the W&B project shows the study itself and not only
its trials."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import optuna
from omegaconf import DictConfig, OmegaConf

from sweeplab import tracking
from sweeplab.redaction import redact
from sweeplab.sweep import queries, report

__all__ = ["WANDB_LOGGER", "log_study", "wandb_settings"]

log = logging.getLogger(__name__)

WANDB_LOGGER = "sweeplab.tracking.wandb_logger"


def wandb_settings(config: DictConfig) -> dict[str, Any] | None:
    """The trials' W&B logger settings (project, tags, offline), or ``None`` when the sweep
    does not log to W&B."""
    node = OmegaConf.select(config, "logger.wandb")
    if node is None or node.get("_target_") != WANDB_LOGGER:
        return None
    return {key: OmegaConf.select(node, key) for key in ("project", "tags", "offline")}


def log_study(
    study: optuna.Study, sweep_dir: Path, plots: list[Path], settings: dict[str, Any], storage: str
) -> None:
    """Write (or, online, update) the study's run, its files under ``sweep_dir``. Never fails
    the sweep: a problem is a warning, and the results on disk stand."""
    import wandb

    mode = tracking.wandb_mode(settings.get("offline"))
    if mode == "disabled":
        return
    # One run per study and storage: re-running (resuming) a sweep updates the same run.
    run_id = hashlib.sha1(f"{study.study_name}@{redact(storage)}".encode()).hexdigest()[:16]
    trials, best = queries.reported_trials(study), queries.best_trial(study)
    base = queries.base_overrides(study)
    try:
        run = wandb.init(
            project=settings.get("project"),
            group=study.study_name,
            job_type="study",
            name=f"{study.study_name}-study",
            id=f"study-{run_id}",
            resume="allow",
            tags=list(settings.get("tags") or []),
            dir=str(sweep_dir),
            mode=mode,
            config={  # group and job_type also as config, as the trials have them
                "group": study.study_name,
                "job_type": "study",
                "study_name": study.study_name,
                "directions": [d.name.lower() for d in study.directions],
                "objectives": queries.objective_names(study),
                "sampler": type(study.sampler).__name__,
                "pruner": report.pruner_name(study.pruner),
                "storage": redact(storage),
            },
            reinit="create_new",
            settings=tracking.console_settings(mode),
        )
    except Exception as e:
        log.warning("Could not start the study's W&B run: %s", e)
        return
    try:
        header, rows = queries.trial_rows(trials, queries.value_columns(study))
        record: dict[str, Any] = {
            "trials": wandb.Table(columns=header, data=rows, allow_mixed_types=True),
            **{f"plots/{p.stem}": wandb.Image(str(p)) for p in plots},
        }
        if not queries.is_multi_objective(study):  # each architecture's row, as report.md has
            for key in queries.choice_keys(study):
                header, rows = report.choice_rows(study, trials, key)
                table = wandb.Table(columns=header, data=rows, allow_mixed_types=True)
                record[f"per_{key.replace('/', '_')}"] = table
        run.log(record)
        counts = queries.state_counts(trials)
        run.summary.update(
            {
                "trials_total": len(trials),
                **{f"trials_{state}": counts[state] for state in ("complete", "pruned", "fail")},
            }
        )
        if queries.is_multi_objective(study):
            pareto = queries.pareto_trials(study)
            names = queries.objective_names(study)
            run.summary["pareto_trials"] = [t.number for t in pareto]
            run.log(
                {
                    "pareto": wandb.Table(
                        columns=["number", *names, "overrides"],
                        data=[
                            [t.number, *t.values, " ".join(queries.best_overrides(t, base))]
                            for t in pareto
                        ],
                    )
                }
            )
        if best is not None:
            run.summary.update(
                {
                    "best_trial": best.number,
                    "best_value": best.value,
                    "best_params": best.params,
                    "best_overrides": " ".join(queries.best_overrides(best, base)),
                }
            )
        run.finish()
        log.info("Study summary in W&B: run %s (job_type=study)", run.id)
    except Exception as e:
        log.warning("Could not write the study's W&B run: %s", e)
        run.finish(exit_code=1)
