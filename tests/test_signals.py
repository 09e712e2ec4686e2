"""SIGTERM and SIGINT (Ctrl-C): one line, the work kept, exit 128 + signal (signals.py), and a
stopped sweep's running trials requeued for its resume (sweep/workers.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from sweeplab import signals
from sweeplab.sweep import queries
from sweeplab.sweep import study as stored
from sweeplab.sweep.storage import open_storage
from sweeplab.sweep.worker import worker_name
from sweeplab.sweep.workers import requeue_interrupted, run_local, stop_workers, worker_log
from tests.conftest import QUICK, ROOT, inspect_wandb_run, load_study


def test_a_signal_becomes_stopped_and_repeats_are_ignored() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(signals.Stopped) as stopped, signals.stopping():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises before this ends
    assert stopped.value.signum == signal.SIGTERM and stopped.value.exit_code == 143
    assert signal.getsignal(signal.SIGTERM) is before  # restored

    with signals.stopping():
        with pytest.raises(signals.Stopped):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
        os.kill(os.getpid(), signal.SIGINT)  # a second Ctrl-C while stopping: ignored


def test_a_sigterm_seen_by_lightning_is_left_to_lightning() -> None:
    """Lightning's connector installs its handler over ours and calls ours after setting its
    flag; its loops then raise SIGTERMException (a SystemExit) between batches."""
    with pytest.raises(signals.Stopped) as stopped, signals.stopping():
        ours = signal.getsignal(signal.SIGTERM)
        assert callable(ours)
        signal.signal(signal.SIGTERM, lambda signum, frame: ours(signum, frame))
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.1)  # no exception: the stop waits for Lightning
        with pytest.raises(signals.Stopped):
            signals.raise_if_stopped()  # what run() checks once fit returns
        raise SystemExit  # Lightning's SIGTERMException
    assert stopped.value.signum == signal.SIGTERM
    assert signals.as_stopped(SystemExit()) is None  # outside a stop, an exit is an exit


def test_a_stop_inside_a_deferred_block_is_raised_when_the_block_ends() -> None:
    written = []
    with signals.stopping():
        with pytest.raises(signals.Stopped) as stopped, signals.deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.1)  # the handler returns: the block goes on
            written.append("record")
            with signals.deferred():  # nested: its end raises nothing
                written.append("outcome")
            written.append("end")
        assert written == ["record", "outcome", "end"]
        assert stopped.value.signum == signal.SIGTERM
    with signals.deferred():  # outside stopping(): nothing to hold
        pass


def test_exit_stopped_prints_one_line_and_exits_128_plus_signal(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        signals.exit_stopped(signals.Stopped(signal.SIGINT), "the line")
    assert exited.value.code == 130
    assert capsys.readouterr().err.strip() == "the line"
    line = signals.run_line("SIGTERM", 3, 10, Path("/runs/x"), ["best.ckpt", "metrics.json"])
    assert line == (
        "Stopped by SIGTERM after epoch 3 of 10; kept /runs/x (best.ckpt, metrics.json); run "
        "the same command to train again."
    )


def _study(tmp_path: Path) -> tuple[optuna.Study, optuna.storages.BaseStorage]:
    storage = open_storage(f"sqlite:///{tmp_path / 'optuna.db'}")
    return optuna.create_study(study_name="s", storage=storage), storage


def _ask(study: optuna.Study, worker: str) -> optuna.Trial:
    trial = study.ask()
    trial.suggest_int("units", 1, 100)
    trial.set_user_attr(stored.WORKER, worker)
    return trial


def test_requeue_fails_this_workers_trials_and_queues_each_once(tmp_path: Path) -> None:
    study, storage = _study(tmp_path)
    mine, other = _ask(study, worker_name()), _ask(study, "elsewhere:1")
    requeue_interrupted(study, storage)
    requeue_interrupted(study, storage)  # the sweeper's second look finds nothing to do
    states = {t.number: t.state for t in study.trials}
    assert states == {0: TrialState.FAIL, 1: TrialState.RUNNING, 2: TrialState.WAITING}
    [retry] = study.get_trials(states=(TrialState.WAITING,))
    assert queries.retry_of(retry) == mine.number and retry.params == mine.params
    assert stored.WORKER not in retry.user_attrs  # until a worker claims it
    assert queries.failures_since(study, 0) == []  # a stop is not the configuration's failure
    assert study.ask().number == retry.number  # the resume runs it first
    assert other.number == 1


def test_a_stopped_trial_whose_run_kept_its_outcome_is_completed_not_requeued(
    tmp_path: Path,
) -> None:
    """The stop came after the run kept its value on the trial, before the worker told it."""
    study, storage = _study(tmp_path)
    finished, training = _ask(study, worker_name()), _ask(study, worker_name())
    stored.keep_outcome(finished, 0.42)
    requeue_interrupted(study, storage)
    [done, stopped, retry] = study.trials
    assert done.state == TrialState.COMPLETE and done.value == 0.42
    assert stopped.state == TrialState.FAIL and queries.retry_of(retry) == training.number
    assert finished.number == 0 and retry.state == TrialState.WAITING


def _child(code: str) -> list[str]:
    return [sys.executable, "-c", code]


@pytest.mark.slow  # starts processes
def test_run_local_passes_the_signal_on_then_kills_after_the_timeout(tmp_path: Path) -> None:
    marker = tmp_path / "stopped"
    obeys = (
        "import signal, sys, time, pathlib\n"
        "def stop(n, f):\n"
        f"    pathlib.Path({str(marker)!r}).write_text(str(n)); sys.exit(128 + n)\n"
        "signal.signal(signal.SIGINT, stop)\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    ignores = "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\ntime.sleep(60)"
    log_dir = tmp_path / "workers"

    def ctrl_c_once_ready() -> None:
        if "ready" in worker_log(log_dir, 0).read_text():
            os.kill(os.getpid(), signal.SIGINT)

    started = time.monotonic()
    with pytest.raises(signals.Stopped), signals.stopping():
        run_local(
            _child("import os; exec(os.environ['CODE'])"),
            [{**os.environ, "CODE": obeys}, {**os.environ, "CODE": ignores}],
            log_dir,
            ctrl_c_once_ready,
            poll_s=0.1,
            stop_timeout_s=2.0,
        )
    assert marker.read_text() == str(int(signal.SIGINT))  # the worker got the same signal
    assert time.monotonic() - started < 30  # the one that ignored it was killed


@pytest.mark.slow  # starts processes
def test_stop_workers_returns_at_once_when_all_have_exited() -> None:
    done = subprocess.Popen(_child("pass"))
    done.wait()
    started = time.monotonic()
    stop_workers([done], signal.SIGTERM, timeout_s=30)
    assert time.monotonic() - started < 1


# End to end: train.py as a user runs it, stopped by a real signal.


def _start(log: Path, env: dict[str, str], *overrides: str) -> subprocess.Popen[str]:
    with log.open("w") as out:
        return subprocess.Popen(
            [sys.executable, str(ROOT / "train.py"), *overrides],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )


def _wait_for(pattern: str, under: Path, process: subprocess.Popen[str], timeout: float) -> None:
    """Until a file matching ``pattern`` exists under ``under`` (e.g. the first epoch's
    checkpoint), while the process still runs."""
    deadline = time.monotonic() + timeout
    while not any(under.rglob(pattern)):
        assert process.poll() is None, f"exited early with {process.returncode}"
        assert time.monotonic() < deadline, f"no {pattern} under {under} in {timeout} s"
        time.sleep(0.2)


def _stop(process: subprocess.Popen[str], signum: int, log: Path) -> str:
    process.send_signal(signum)
    assert process.wait(timeout=60) == 128 + signum, log.read_text()[-3000:]
    output = log.read_text()
    assert "Traceback" not in output and "Error executing job" not in output, output[-3000:]
    return output


def _final_lines(output: str, prefix: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith(prefix)]


@pytest.mark.slow  # train.py as a process
def test_sigterm_stops_a_run_keeping_its_checkpoint_record_and_wandb_run(
    fashion_dir: Path, tmp_path: Path, isolated_env: dict[str, str]
) -> None:
    logs, out = tmp_path / "logs", tmp_path / "out.txt"
    process = _start(
        out,
        isolated_env,
        f"paths.log_dir={logs}",
        f"data.data_dir={fashion_dir}",
        "data.val_size=100",
        "callbacks.rich_progress_bar=null",
        "trainer.max_epochs=500",
    )
    _wait_for("best.ckpt", logs, process, timeout=120)
    output = _stop(process, signal.SIGTERM, out)

    [run_dir] = (logs / "runs" / "mlp").iterdir()
    [line] = _final_lines(output, "Stopped by")
    saved = json.loads((run_dir / "metrics.json").read_text())
    assert saved["stopped_by"] == "SIGTERM" and 1 <= saved["epochs"] < 500
    assert line == signals.run_line(
        "SIGTERM", saved["epochs"], 500, run_dir, ["best.ckpt", "metrics.json"]
    )
    assert Path(saved["ckpt_path"]).is_file() and "val/acc_best" in saved["metrics"]
    [wandb_run] = (run_dir / "wandb").glob("offline-run-*")
    assert inspect_wandb_run(wandb_run, isolated_env)["state"] == "failed"


@pytest.mark.slow  # sweep processes
def test_ctrl_c_stops_local_workers_and_the_same_command_resumes(
    fashion_dir: Path, tmp_path: Path, isolated_env: dict[str, str]
) -> None:
    logs = tmp_path / "logs"
    command = (
        f"paths.log_dir={logs}",
        "-m",
        f"data.data_dir={fashion_dir}",
        *QUICK,
        "hparams_search=mlp_optuna",
        "logger=none",
        "data.train_subset=200",
        "trainer.max_epochs=6",
        "hydra.sweeper.workers=2",
        "hydra.sweeper.n_trials=2",
    )
    sweep_dir = logs / "sweeps" / "mlp_optuna"
    out = tmp_path / "interrupted.txt"
    process = _start(out, isolated_env, *command)
    _wait_for("trial_*/checkpoints/best.ckpt", logs, process, timeout=180)
    output = _stop(process, signal.SIGINT, out)

    study = load_study(sweep_dir)
    storage = f"sqlite:///{sweep_dir / 'optuna.db'}"
    finished = queries.count_finished(study)
    assert _final_lines(output, "Interrupted:") == [signals.sweep_line(finished, 2, storage)]
    assert queries.count(study, TrialState.RUNNING) == 0
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert waiting and all(queries.retry_of(t) is not None for t in waiting)

    resumed = _start(tmp_path / "resumed.txt", isolated_env, *command)
    assert resumed.wait(timeout=300) == 0, (tmp_path / "resumed.txt").read_text()[-3000:]
    study = load_study(sweep_dir)
    assert queries.count_finished(study) == 2
    assert queries.count(study, TrialState.RUNNING, TrialState.WAITING) == 0
