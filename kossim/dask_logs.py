"""Dask's one benign shutdown error, kept out of kossim's output.

A Dask worker sends its scheduler a heartbeat about twice a second. When the
private ``LocalCluster`` of ``--executor dask`` closes, it already does so in
the right order (workers first, then the scheduler), but a worker's own
close aborts its connections while a heartbeat may still be in flight, and
the worker logs that as an error with a traceback ("Failed to communicate
with scheduler during heartbeat."): about one sweep in eight, with every
result already in.

:class:`QuietClosingHeartbeat` drops exactly that record, and only while its
worker is closing; the same message from a running worker (a scheduler that
really went away) and every other record still show. This module imports
``distributed``: load it only when Dask is in use.
"""

from __future__ import annotations

import logging
from typing import Any

from distributed.core import Status
from distributed.diagnostics.plugin import WorkerPlugin

__all__ = ["HEARTBEAT_FAILED", "QuietClosingHeartbeat"]

HEARTBEAT_FAILED = "Failed to communicate with scheduler during heartbeat."
_CLOSING = (Status.closing, Status.closed, Status.closing_gracefully)


class _AbortedHeartbeat(logging.Filter):
    def __init__(self, worker: Any) -> None:
        super().__init__()
        self.worker = worker

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.msg == HEARTBEAT_FAILED and self.worker.status in _CLOSING)


class QuietClosingHeartbeat(WorkerPlugin):
    """A worker plugin: a closing worker does not report its aborted heartbeat."""

    name = "kossim-quiet-closing-heartbeat"

    def setup(self, worker: Any) -> None:
        logging.getLogger("distributed.worker").addFilter(_AbortedHeartbeat(worker))
