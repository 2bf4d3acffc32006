"""How the workers of kossim's private Dask cluster behave, set up by a worker plugin.

- Ctrl-C is the sweep process's to handle. In a terminal it reaches every
  process of the foreground group, and each Dask worker process would print a
  ``KeyboardInterrupt`` traceback while the sweep process stops the cluster
  anyway; the workers ignore SIGINT, as local workers do.
- A worker sends its scheduler a heartbeat about twice a second. When the
  cluster closes, it already does so in the right order (workers first, then
  the scheduler), but a worker's own close aborts its connections while a
  heartbeat may still be in flight, and the worker logs that as an error with
  a traceback ("Failed to communicate with scheduler during heartbeat."):
  about one sweep in eight, with every result already in. The plugin drops
  exactly that record, and only while its worker is closing; the same
  message from a running worker (a scheduler that really went away) and
  every other record still show.

Only the private ``LocalCluster`` gets the plugin: workers of a cluster at
``--address`` are someone else's. This module imports ``distributed``: load
it only when Dask is in use.
"""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

from distributed.core import Status
from distributed.diagnostics.plugin import WorkerPlugin

__all__ = ["HEARTBEAT_FAILED", "KossimWorkers"]

HEARTBEAT_FAILED = "Failed to communicate with scheduler during heartbeat."
_CLOSING = (Status.closing, Status.closed, Status.closing_gracefully)


class _AbortedHeartbeat(logging.Filter):
    def __init__(self, worker: Any) -> None:
        super().__init__()
        self.worker = worker

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.msg == HEARTBEAT_FAILED and self.worker.status in _CLOSING)


class KossimWorkers(WorkerPlugin):
    """A worker plugin: SIGINT ignored, and no report of a heartbeat aborted by closing."""

    name = "kossim-workers"

    def setup(self, worker: Any) -> None:
        if threading.current_thread() is threading.main_thread():  # where signals are set
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        logging.getLogger("distributed.worker").addFilter(_AbortedHeartbeat(worker))
