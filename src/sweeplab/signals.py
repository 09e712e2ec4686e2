"""Stopping on SIGTERM and SIGINT (Ctrl-C): one exception, and the one line that says what
was kept and how to go on.

Inside :func:`stopping`, the first SIGTERM or SIGINT becomes :class:`Stopped`; later ones are
ignored while the process winds down (so a second Ctrl-C cannot cut short the writes that keep
the work). While Lightning fits or tests, its signal connector installs its own SIGTERM
handler, which calls ours after setting its flag: we then leave the stop to Lightning, which
raises its ``SIGTERMException`` at the end of the current batch, when checkpoints and loggers
are consistent; :func:`as_stopped` turns that exception into :class:`Stopped`.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import NoReturn

__all__ = [
    "SIGNALS",
    "Stopped",
    "as_stopped",
    "deferred",
    "exit_stopped",
    "raise_if_stopped",
    "run_line",
    "stopping",
    "sweep_line",
]

SIGNALS = (signal.SIGINT, signal.SIGTERM)

# The signals received inside the active `stopping` block; None outside one.
_received: list[int] | None = None
_deferring = False  # inside a `deferred` block: a stop waits for its end


class Stopped(BaseException):
    """The process was asked to stop by signal ``signum``.

    A ``BaseException``, as ``KeyboardInterrupt`` is, so that no ``except Exception`` records
    it as a trial's or a run's own failure. ``summary`` is the line to print, when the code
    that stopped knew what it kept.
    """

    def __init__(self, signum: int, summary: str = "") -> None:
        super().__init__(summary or signal.Signals(signum).name)
        self.signum = signum
        self.summary = summary

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # what a shell reports for a process the signal ended


@contextmanager
def stopping() -> Iterator[None]:
    """Turn SIGTERM and SIGINT into :class:`Stopped` within the block. Nested blocks, and
    blocks outside the main thread (where Python cannot set handlers), change nothing."""
    global _received
    if _received is not None or threading.current_thread() is not threading.main_thread():
        yield
        return
    _received = []
    previous = {signum: signal.signal(signum, _handler) for signum in SIGNALS}
    try:
        yield
    except BaseException as e:
        stop = as_stopped(e)
        if stop is None or stop is e:
            raise
        raise stop from None
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _received = None


@contextmanager
def deferred() -> Iterator[None]:
    """Hold a stop that arrives within the block until the block ends, then raise it: for
    short writes that belong together, such as a finished run's record and the outcome it
    keeps on its trial. Nested blocks, and blocks outside :func:`stopping`, change nothing."""
    global _deferring
    if _received is None or _deferring:
        yield
        return
    _deferring = True
    try:
        yield
    finally:
        _deferring = False
    raise_if_stopped()


def _handler(signum: int, frame: FrameType | None) -> None:
    if _received is None or _received:  # a repeat while stopping, or a stray late call
        return
    _received.append(signum)
    if _deferring:
        return  # raised when the deferred block ends
    if signum == signal.SIGTERM and signal.getsignal(signum) is not _handler:
        return  # called by Lightning's handler: it stops at the end of the batch
    raise Stopped(signum)


def as_stopped(error: BaseException) -> Stopped | None:
    """The stop ``error`` stands for: itself, or the ``SystemExit`` (Lightning's
    ``SIGTERMException``) or ``KeyboardInterrupt`` raised after a signal; else ``None``."""
    if isinstance(error, Stopped):
        return error
    if _received and isinstance(error, SystemExit | KeyboardInterrupt):
        return Stopped(_received[0])
    return None


def raise_if_stopped() -> None:
    """Raise the stop of a SIGTERM that Lightning saw after its last check (its loops
    only look between batches), before anything else starts."""
    if _received:
        raise Stopped(_received[0])


def exit_stopped(stop: Stopped, summary: str) -> NoReturn:
    """The one exit of a stopped command: its one line on stderr, status 128 + signal."""
    print(f"\n{stop.summary or summary}", file=sys.stderr)
    raise SystemExit(stop.exit_code) from None


def run_line(signal_name: str, epochs: int, max_epochs: int, run_dir: Path, kept: list[str]) -> str:
    """What a stopped single run says (it has no resume: the same command trains anew)."""
    of = f" of {max_epochs}" if max_epochs > 0 else ""  # -1: no epoch limit
    when = f"after epoch {epochs}{of}" if epochs else "before its first epoch ended"
    return (
        f"Stopped by {signal_name} {when}; kept {run_dir} ({', '.join(kept)}); run the same "
        "command to train again."
    )


def sweep_line(finished: int, n_trials: int, storage: str) -> str:
    """What a stopped sweep says; ``storage`` must be redacted already."""
    return (
        f"Interrupted: {finished} of {n_trials} trials finished and kept in {storage}; run the "
        "same command to resume."
    )
