"""kossim on Dask workers: how runs report back, and how the private cluster's workers behave.

- :func:`stream_chunk` runs a chunk of runs and puts each result on a Dask
  queue the moment its run ends, so the sweep process stores it at once, as
  with local workers (a chunk's return value would come only when the whole
  chunk is done). This holds on any cluster.

The private ``LocalCluster`` of ``--executor dask`` also gets a worker plugin:

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

Workers of a cluster at ``--address`` are someone else's and keep their own
settings. This module imports ``distributed``: load it only when Dask is in
use.
"""

from __future__ import annotations

import logging
import pickle
import signal
import threading
from collections.abc import Callable, Sequence
from typing import Any

from distributed import Queue
from distributed.core import Status
from distributed.diagnostics.plugin import WorkerPlugin

from kossim.runspec import RunResult, RunSpec

__all__ = ["HEARTBEAT_FAILED", "KossimWorkers", "stream_chunk"]

HEARTBEAT_FAILED = "Failed to communicate with scheduler during heartbeat."
_CLOSING = (Status.closing, Status.closed, Status.closing_gracefully)


def stream_chunk(
    specs: Sequence[RunSpec], fn: Callable[[RunSpec], RunResult], queue_name: str
) -> int:
    """Dask task: run a chunk, putting each result (pickled) on the Dask queue
    ``queue_name`` as soon as it is done; returns the number of runs."""
    results = Queue(queue_name)  # through this worker's client
    for spec in specs:
        results.put(pickle.dumps(fn(spec), protocol=pickle.HIGHEST_PROTOCOL))
    return len(specs)


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
