"""Worker processes end when the sweep process that started them dies.

A process-pool worker blocks on its call queue, whose write end it holds
itself, so it never sees its parent go. Under the fork server the chain goes
further: every worker keeps the fork server alive (it serves until its last
client closes), and workers and server keep multiprocessing's resource
tracker alive. After ``kill -9`` of ``kossim run`` all of them would live on,
holding the terminal's stdout and stderr, so a wrapper waiting for the pipes
to close would hang.

So each worker watches the sweep process itself, and the rest follows: once
the workers are gone, the fork server and the resource tracker see end of
file and exit.

- Linux: a pidfd of the sweep process, waited on by a daemon thread, ends the
  worker the moment the sweep process exits (no polling, no pid reuse). When
  the worker is the sweep process's own child (spawn), ``PR_SET_PDEATHSIG``
  also has the kernel kill it with its parent.
- Other POSIX systems, or a kernel without pidfds: the thread checks every
  ``POLL_INTERVAL`` seconds whether the sweep process still exists.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import select
import signal
import sys
import threading

__all__ = ["ORPHAN_EXIT", "POLL_INTERVAL", "watch_parent"]

POLL_INTERVAL = 0.5
"""Seconds between checks where the sweep process cannot be waited on directly."""
ORPHAN_EXIT = 128 + signal.SIGHUP
"""Exit status of a worker whose sweep process died (as if hung up)."""
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def watch_parent(sweep_pid: int) -> None:
    """End this process (at once, without cleanup) when process ``sweep_pid`` exits."""
    if sys.platform.startswith("linux") and os.getppid() == sweep_pid:
        _die_with_parent()
    if not _alive(sweep_pid):  # it died before the watch began
        os._exit(ORPHAN_EXIT)
    pidfd = _open_pidfd(sweep_pid)
    target = _wait_pidfd if pidfd is not None else _poll_pid
    arg = pidfd if pidfd is not None else sweep_pid
    threading.Thread(target=target, args=(arg,), name="kossim-lifeline", daemon=True).start()


def _die_with_parent() -> None:
    """Ask the kernel for SIGKILL when the parent dies (a no-op where prctl is missing)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _open_pidfd(pid: int) -> int | None:
    if not hasattr(os, "pidfd_open"):
        return None
    try:
        return os.pidfd_open(pid)
    except ProcessLookupError:
        os._exit(ORPHAN_EXIT)
    except OSError:  # an old kernel or a sandbox without the syscall
        return None


def _wait_pidfd(pidfd: int) -> None:
    """A pidfd becomes readable when its process exits."""
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    while not poller.poll():
        pass
    os._exit(ORPHAN_EXIT)


def _poll_pid(pid: int) -> None:
    stop = threading.Event()
    while not stop.wait(POLL_INTERVAL):
        if not _alive(pid):
            os._exit(ORPHAN_EXIT)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True
