"""What a conditional space costs a sweep outside training: the search-space check before the
first trial (every architecture's space tried) and the sampler's time per trial, for the
architecture study (arch_optuna) against the single CNN space (cnn_optuna), alternating.

python benchmarks/conditional_overhead.py --data-dir ../shared/fashion-mnist --trials 40

No training: each trial is sampled by the sweep's own sampler (TPE, multivariate, grouped) and
told a random value, so the sampler models as many finished trials as a real sweep would.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from sweeplab.sweep import roles  # noqa: E402
from sweeplab.sweep.settings import SweepSettings  # noqa: E402


def open_sweep(search: str, sweep_dir: Path) -> tuple[float, roles.Sweep]:
    """Open ``hparams_search=<search>`` as the sweeper does; the seconds it took (the
    search-space check is most of it)."""
    GlobalHydra.instance().clear()
    fixed = [f"hparams_search={search}", f"hydra.sweep.dir={sweep_dir}", "logger=none"]
    with initialize_config_dir(str(ROOT / "configs"), version_base=None):
        cfg = compose("train", overrides=fixed, return_hydra_config=True)
        kwargs = {k: v for k, v in cfg.hydra.sweeper.items() if k != "_target_"}
        loader = GlobalHydra.instance().config_loader()
        started = time.perf_counter()
        sweep = roles.open_sweep(
            SweepSettings.from_kwargs(kwargs),
            cfg,
            [],
            lambda extra: compose("train", overrides=[*fixed, *extra]),
            lambda key: bool(loader.get_group_options(key)),
            check_values=True,
        )
        return time.perf_counter() - started, sweep


def sample_times(sweep: roles.Sweep, trials: int) -> list[float]:
    """Seconds to ask and sample each trial, the study growing as in a sweep."""
    rng = random.Random(0)
    times = []
    for _ in range(trials):
        started = time.perf_counter()
        trial = sweep.study.ask()
        sweep.space.sample(trial, sweep.config)
        times.append(time.perf_counter() - started)
        sweep.study.tell(trial, rng.random())
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    os.environ["FASHION_MNIST_DIR"] = str(Path(args.data_dir).resolve())
    results: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            for search in ("cnn_optuna", "arch_optuna"):  # alternating
                check_s, sweep = open_sweep(search, Path(tmp) / f"{search}_{round_}")
                per_trial = sample_times(sweep, args.trials)
                entry = results.setdefault(search, {"check": [], "sample": []})
                entry["check"].append(check_s)
                entry["sample"].append(statistics.median(per_trial))
    print("| search | check before the first trial (s) | sampling per trial, median (s) |")
    print("| --- | --- | --- |")
    for search, entry in results.items():
        check = statistics.median(entry["check"])
        sample = statistics.median(entry["sample"])
        print(f"| {search} | {check:.2f} | {sample:.3f} |")


if __name__ == "__main__":
    main()
