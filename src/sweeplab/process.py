"""Process-wide settings, applied explicitly by the entry points and workers.

Everything here changes the whole Python process, not one object: the cyclic garbage
collector around the entry points' imports, glibc's malloc thresholds, torch's CPU threads,
and what one run keeps in memory for the next run in the same process. Nothing happens on
import, and building a Trainer, a model or a data module never calls these functions: the
entry points (``train.py``, ``eval.py``, ``sweeplab.train.run``, ``sweeplab.evaluate.run``)
and the sweep's workers do.

This module imports only the standard library: the entry points import it before the
collector is off.
"""

from __future__ import annotations

import ctypes
import functools
import gc
import logging
import os
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

__all__ = [
    "THREAD_VARIABLES",
    "ProcessMemo",
    "apply",
    "imports_without_gc",
    "is_glibc",
    "log_write_errors_dropped",
    "malloc_keeps_freed_memory",
    "plots_off_screen",
    "thread_environment",
]

T = TypeVar("T")

# mallopt(3) parameters, from <malloc.h>; 32 MiB is glibc's ceiling for the mmap threshold.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD = 32 * 2**20
TRIM_THRESHOLD = 256 * 2**20
# Read by OpenMP and MKL when they start, that is when torch is imported.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def plots_off_screen() -> None:
    """Draw matplotlib figures off-screen unless the user chose a backend (``MPLBACKEND``).

    sweeplab saves its plots to files and shows none; a GUI backend would only cost time, and
    fail where ``$DISPLAY`` is set but unreachable (an ssh session). Call before matplotlib
    is imported: it reads the variable then.
    """
    os.environ.setdefault("MPLBACKEND", "agg")


@contextmanager
def imports_without_gc() -> Iterator[None]:
    """Run the entry point's imports with the cyclic garbage collector off, then freeze
    what they made.

    torch, Lightning and their imports create about 440,000 objects that live as long as
    the process. With the collector on, its full passes over them cost about 1 s of a
    3.4 s start, each later full collection walks them again (0.2 s each), and so do the
    collections at interpreter exit (about 0.9 s). Frozen objects are never walked.
    """
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()


def apply(*, keep_freed_memory: bool = True, threads: int | None = None) -> None:
    """Set up this process for training: the one call an entry point or worker makes before
    it builds its Trainer.

    ``keep_freed_memory`` (the config's ``trainer.keep_freed_memory``): see
    :func:`malloc_keeps_freed_memory`; false leaves glibc's defaults, unless an earlier run in this
    process already changed them (the setting is process-wide and stays). ``threads``: torch's
    CPU threads for its operators (``torch.set_num_threads``); None leaves torch's own choice
    (``OMP_NUM_THREADS`` if set, else one per core).
    """
    if keep_freed_memory:
        malloc_keeps_freed_memory()
    if threads is not None:
        import torch  # the entry points that call this have imported it already

        torch.set_num_threads(threads)


@contextmanager
def log_write_errors_dropped() -> Iterator[None]:
    """Within the block, a log record that a handler cannot write (its file on a full disk)
    is dropped, instead of the standard library printing a traceback per record ("--- Logging
    error ---"): the sweep's own error then says once why the disk refused its files."""
    previous = logging.raiseExceptions
    logging.raiseExceptions = False
    try:
        yield
    finally:
        logging.raiseExceptions = previous


def is_glibc() -> bool:
    """Whether this process runs on GNU libc, whose malloc ``mallopt`` tunes."""
    try:
        version = os.confstr("CS_GNU_LIBC_VERSION")
    except (AttributeError, ValueError, OSError):  # not a GNU system, or not POSIX
        return False
    return bool(version and version.startswith("glibc"))


@functools.cache
def malloc_keeps_freed_memory() -> bool:
    """Make glibc's malloc keep freed memory for the next step instead of handing it back.

    A training step frees and re-allocates the same large activation buffers every step. By
    default glibc serves blocks over 128 KiB with fresh ``mmap`` pages and trims the top of the
    heap on free, so each step page-faults and zeroes its buffers anew: the reference CNN at
    batch 256 took 4.4 s per epoch on a 2-core CPU, 2.3 s with freed memory kept (2026-11-28,
    BENCHMARKS.md). Process-wide, once; returns whether it took (False off glibc).
    """
    if not is_glibc():
        return False
    libc = ctypes.CDLL("libc.so.6")
    trim = libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    return bool(trim and libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))


def thread_environment(threads: int) -> dict[str, str]:
    """The environment variables that give a process ``threads`` CPU threads from its start.

    For a process that starts another one (the sweep's local workers): OpenMP and MKL read
    them when torch is imported, before any code of the new process could call :func:`apply`.
    """
    return dict.fromkeys(THREAD_VARIABLES, str(threads))


class ProcessMemo:
    """What one run built that the next run in the same process may reuse, one value per kind.

    A sweep worker runs its trials one after another in one process, and they mostly need
    the same prepared data. The memo keeps the last value built for each kind (the first item
    of its key) together with the whole key it was built for; a later run with the same key
    gets that value back instead of building it again, a different key replaces it. The old
    value is dropped before the new one is built, so two never take memory at once.
    """

    def __init__(self) -> None:
        self._last: dict[Hashable, tuple[tuple[Any, ...], Any]] = {}

    def get(self, key: tuple[Any, ...], build: Callable[[], T]) -> T:
        """``build()``, or what it built for the same ``key`` earlier in this process."""
        kept = self._last.get(key[0])
        if kept is not None and kept[0] == key:
            return kept[1]
        # Free the old value, this frame's reference included, before building the new one.
        kept = None
        self._last.pop(key[0], None)
        value = build()
        self._last[key[0]] = key, value
        return value

    def clear(self) -> None:
        """Forget everything, as in a fresh process (for tests)."""
        self._last.clear()
