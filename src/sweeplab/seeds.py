"""Repeating a run over several seeds, and comparing runs by mean and spread.

A single run's test accuracy moves by a few tenths of a percent with the seed; a tuned
configuration only beats a baseline if it does so over seeds.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, open_dict

from sweeplab import record

__all__ = [
    "SEEDS_FILE",
    "SUMMARY_METRICS",
    "comparison_table",
    "load_summary",
    "run_seeds",
    "summarise",
]

SEEDS_FILE = "seeds.json"
SUMMARY_METRICS = ("test/acc", "test/loss", "val/acc_best", "val/loss_best")


def run_seeds(
    cfg: DictConfig, run: Callable[[DictConfig], dict[str, Any]], first_seed: int
) -> dict[str, Any]:
    """Run ``cfg`` with seeds ``first_seed .. first_seed + cfg.seeds - 1``, each in
    ``<run dir>/seed_<seed>``, and write their summary to ``<run dir>/seeds.json``."""
    run_dir = Path(cfg.paths.output_dir)
    records = []
    for seed in range(first_seed, first_seed + cfg.seeds):
        seed_cfg = cfg.copy()
        with open_dict(seed_cfg):
            seed_cfg.seed = seed
            seed_cfg.seeds = 1
            seed_cfg.paths.output_dir = str(run_dir / f"seed_{seed}")
        records.append(run(seed_cfg))
    summary = summarise(str(cfg.name), records)
    (run_dir / SEEDS_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def summarise(name: str, records: list[dict[str, Any]]) -> dict[str, Any]:
    metrics = {}
    for metric in SUMMARY_METRICS:
        values = [r["metrics"][metric] for r in records if metric in r["metrics"]]
        if values:
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            metrics[metric] = {"mean": statistics.fmean(values), "std": spread, "values": values}
    return {
        "name": name,
        "seeds": [r["seed"] for r in records],
        "metrics": metrics,
        "optimized_metric": records[0]["optimized_metric"],
        "duration_s": round(sum(r["duration_s"] for r in records), 1),
    }


def load_summary(run_dir: Path) -> dict[str, Any]:
    """A run directory's seeds summary, or its single run seen as one seed."""
    seeds_file = run_dir / SEEDS_FILE
    if seeds_file.is_file():
        return json.loads(seeds_file.read_text())
    single = record.read(run_dir)
    name = run_dir.parent.name
    return summarise(name, [single])


def comparison_table(run_dirs: list[Path]) -> str:
    """A Markdown table of test and validation accuracy, mean ± std over each run's seeds."""
    lines = [
        "| run | seeds | test acc | val acc (best) | time |",
        "| --- | --- | --- | --- | --- |",
    ]
    for run_dir in run_dirs:
        summary = load_summary(run_dir)
        cells = [summary["name"], str(len(summary["seeds"]))]
        for metric in ("test/acc", "val/acc_best"):
            stats = summary["metrics"].get(metric)
            cells.append(f"{stats['mean']:.4f} ± {stats['std']:.4f}" if stats else "-")
        cells.append(f"{summary['duration_s']:.0f} s")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
