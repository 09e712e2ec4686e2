"""The entry points import torch and Lightning without the cyclic GC, then freeze them."""

from __future__ import annotations

import gc
import subprocess
import sys

import pytest

from sweeplab.startup import imports_without_gc
from tests.conftest import ROOT


def test_the_collector_is_off_during_the_imports_and_on_after_even_if_one_fails() -> None:
    frozen_before = gc.get_freeze_count()
    with pytest.raises(ImportError), imports_without_gc():
        assert not gc.isenabled()
        made_during_imports = [[] for _ in range(100)]
        import sweeplab_no_such_module  # noqa: F401
    assert gc.isenabled()
    assert gc.get_freeze_count() >= frozen_before + len(made_during_imports)
    gc.unfreeze()  # leave the test process as it was


@pytest.mark.parametrize("script", ["train.py", "eval.py"])
def test_entry_points_freeze_what_their_imports_made(script: str) -> None:
    code = (
        f"import gc, runpy; runpy.run_path({script!r}, run_name='imported'); "
        "print(gc.get_freeze_count(), gc.isenabled())"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    frozen, enabled = done.stdout.split()
    assert int(frozen) > 100_000  # torch and Lightning alone make about 400,000
    assert enabled == "True"
