"""Stopping a sweep on SIGINT or SIGTERM, as Ctrl-C, ``timeout``, CI and job schedulers do.

Python raises ``KeyboardInterrupt`` on SIGINT only if SIGINT was not ignored
when the process started, and shells start background jobs of scripts with
SIGINT ignored; SIGTERM, by default, kills the process before it can stop
its workers. Within :func:`stop_on_signals`, both raise :class:`Interrupted`
in the main thread instead, a ``KeyboardInterrupt``, so the executors cancel
what has not started, stop their workers and keep what finished, and the
command line exits with ``128 + signal number`` (130 for SIGINT, 143 for
SIGTERM), as a shell reports a process killed by that signal.

The first signal starts the stop; further ones are ignored until the block
ends, so a second Ctrl-C cannot cut the cleanup short (it is bounded: workers
that do not stop are killed after a few seconds).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

__all__ = ["STOP_SIGNALS", "Interrupted", "exit_code", "stop_on_signals"]

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """A stop signal received in the main thread."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum


def exit_code(exc: BaseException) -> int:
    """``128 + signal number`` for the signal behind ``exc`` (SIGINT for a plain Ctrl-C)."""
    current: BaseException | None = exc
    while current is not None and not isinstance(current, Interrupted):
        current = current.__cause__ or current.__context__
    return 128 + (current.signum if isinstance(current, Interrupted) else signal.SIGINT)


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM raise :class:`Interrupted` (once).

    Outside the main thread, where Python cannot handle signals, the block
    changes nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired = False

    def handler(signum: int, frame: FrameType | None) -> None:
        nonlocal fired
        if not fired:
            fired = True
            raise Interrupted(signum)

    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
