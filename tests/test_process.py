"""Process-wide settings (sweeplab.process): imports without the cyclic GC, glibc's malloc
thresholds, torch's threads, and the memo shared by the runs of one process; applied by the
entry points, never by building an object."""

from __future__ import annotations

import gc
import os
import resource
import subprocess
import sys
import weakref
from pathlib import Path

import pytest
import torch
from omegaconf import open_dict

from sweeplab import process, train, trainers
from sweeplab.process import ProcessMemo, imports_without_gc
from tests.conftest import ROOT
from tests.test_configs import compose_train


def test_the_collector_is_off_during_the_imports_and_on_after_even_if_one_fails() -> None:
    frozen_before = gc.get_freeze_count()
    with pytest.raises(ImportError), imports_without_gc():
        assert not gc.isenabled()
        made_during_imports = [[] for _ in range(100)]
        import sweeplab_no_such_module  # noqa: F401
    assert gc.isenabled()
    assert gc.get_freeze_count() >= frozen_before + len(made_during_imports)
    gc.unfreeze()  # leave the test process as it was


@pytest.mark.slow  # imports what train.py and eval.py run, in a fresh process
@pytest.mark.parametrize("module", ["sweeplab.train", "sweeplab.evaluate"])
def test_entry_points_freeze_what_their_imports_made(module: str) -> None:
    """Every entry point (train.py, eval.py, sweeplab train/eval, sweeplab.run) imports its
    module through app's one import step."""
    code = (
        f"import gc; from sweeplab import app; app._heavy({module!r}); "
        "print(gc.get_freeze_count(), gc.isenabled())"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    frozen, enabled = done.stdout.split()
    assert int(frozen) > 100_000  # torch and Lightning alone make about 400,000
    assert enabled == "True"


def test_importing_the_module_imports_nothing_heavy() -> None:
    code = "import sys, sweeplab.process; print(sorted({'torch', 'omegaconf'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"  # train.py imports it before the collector is off


# The heap of a training process, Lightning imported: with torch alone (a smaller heap), even
# kept memory faults one step's buffers again now and then (11,265-16,897 pages here).
FAULTS_PER_STEP = """
import resource, sys, torch, pytorch_lightning
from sweeplab import process
if sys.argv[1] == "keep":
    assert process.malloc_keeps_freed_memory()
def step():  # a training step's activations: large buffers, all freed at its end
    buffers = [torch.empty(11 * 2**20, dtype=torch.uint8).fill_(1) for _ in range(6)]
    del buffers
step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.slow  # two Python processes that import torch and Lightning
@pytest.mark.skipif(not process.is_glibc(), reason="mallopt is glibc's")
def test_freed_memory_is_kept_so_steps_do_not_fault_their_buffers_again() -> None:
    def page_faults(mode: str) -> int:
        done = subprocess.run(
            [sys.executable, "-c", FAULTS_PER_STEP, mode], capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        return int(done.stdout)

    touched = 10 * 6 * 11 * 2**20 // resource.getpagesize()  # the pages ten steps write
    default, kept = page_faults("default"), page_faults("keep")
    # By default glibc faults all of them again or 12% (its dynamic mmap threshold decides
    # which, run by run: 168,658 or 19,698 here); kept, 2-4% (2,816 or 5,633).
    assert kept < 0.05 * touched < default, (default, kept, touched)


def test_apply_keeps_freed_memory_unless_told_not_to(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[bool] = []
    monkeypatch.setattr(process, "malloc_keeps_freed_memory", lambda: calls.append(True))
    process.apply(keep_freed_memory=False)
    assert calls == []
    process.apply()
    assert calls == [True]


def test_apply_sets_torch_threads_only_when_asked() -> None:
    before = torch.get_num_threads()
    try:
        process.apply(keep_freed_memory=False)
        assert torch.get_num_threads() == before
        process.apply(keep_freed_memory=False, threads=1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_thread_environment_names_openmp_and_mkl() -> None:
    assert process.thread_environment(3) == {"OMP_NUM_THREADS": "3", "MKL_NUM_THREADS": "3"}


def test_building_a_trainer_leaves_the_process_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[bool] = []
    monkeypatch.setattr(process, "malloc_keeps_freed_memory", lambda: calls.append(True))
    trainers.trainer(accelerator="cpu", logger=False)
    assert calls == []


@pytest.mark.parametrize(("setting", "calls"), [("true", [True]), ("false", [])])
def test_a_run_applies_trainer_keep_freed_memory(
    fashion_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    setting: str,
    calls: list[bool],
) -> None:
    made: list[bool] = []
    monkeypatch.setattr(process, "malloc_keeps_freed_memory", lambda: made.append(True))
    cfg = compose_train(
        f"data.data_dir={fashion_dir}",
        "data.val_size=100",
        "logger=none",
        "trainer=cpu",
        "trainer.max_epochs=1",
        f"trainer.keep_freed_memory={setting}",
        "callbacks.rich_progress_bar=null",
        "test=false",
    )
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path)
    train.run(cfg)
    assert made == calls


def test_the_memo_gives_back_what_was_built_for_the_same_key() -> None:
    memo = ProcessMemo()
    built: list[str] = []

    def build(value: str) -> str:
        built.append(value)
        return value

    assert memo.get(("fit", 1), lambda: build("a")) == "a"
    assert memo.get(("fit", 1), lambda: build("b")) == "a"  # kept
    assert memo.get(("test", 1), lambda: build("c")) == "c"  # another kind, kept beside it
    assert memo.get(("fit", 2), lambda: build("d")) == "d"  # another key replaces it
    assert memo.get(("fit", 1), lambda: build("e")) == "e"
    assert memo.get(("test", 1), lambda: build("f")) == "c"
    memo.clear()
    assert memo.get(("test", 1), lambda: build("g")) == "g"
    assert built == ["a", "c", "d", "e", "g"]


def test_the_memo_drops_the_old_value_before_building_the_new_one() -> None:
    class Tensors:
        pass

    memo = ProcessMemo()
    old = weakref.ref(memo.get(("fit", 1), Tensors))
    alive_while_building: list[bool] = []

    def build() -> Tensors:
        alive_while_building.append(old() is not None)
        return Tensors()

    memo.get(("fit", 2), build)
    assert alive_while_building == [False]


def test_plots_are_drawn_off_screen_unless_the_user_chose_a_backend(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("MPLBACKEND", raising=False)
    process.plots_off_screen()
    assert os.environ["MPLBACKEND"] == "agg"
    monkeypatch.setenv("MPLBACKEND", "pdf")
    process.plots_off_screen()
    assert os.environ["MPLBACKEND"] == "pdf"
