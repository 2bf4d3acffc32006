"""Results of local worker processes, sent back one run at a time.

A process pool returns a chunk's results when the whole chunk is done, so
a sweep stopped mid-chunk would lose runs that had finished. Instead each
worker sends every result the moment its run ends, on a pipe the workers
share (one message at a time, under a lock), and a thread of the sweep
process moves whole results from the pipe to a local queue: waiting for
results never blocks on a worker that died halfway through sending one.
The pool's futures still say when a chunk ended, and how: a chunk whose
worker broke fails the runs it had not sent.

The Dask executor does the same with a Dask queue (:class:`BatchInbox`,
:mod:`kossim.lab.dask_workers`); :class:`Collector` serves both.
"""

from __future__ import annotations

import pickle
import queue
import signal
import threading
import time
import traceback
from collections import Counter, deque
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from multiprocessing.context import BaseContext
from typing import Any, Protocol

from kossim.lab.lifeline import watch_parent
from kossim.runspec import RunResult, RunSpec

__all__ = [
    "POLL_INTERVAL",
    "BatchInbox",
    "ChunkFuture",
    "Collector",
    "Inbox",
    "ResultSource",
    "failed_result",
    "init_worker",
    "stream_chunk",
]

POLL_INTERVAL = 0.05
"""Seconds between checks for chunks that ended without sending all their results."""

RunFn = Callable[[RunSpec], RunResult]
OnResult = Callable[[RunResult], None]


class ResultSource(Protocol):
    """Where finished runs arrive, one at a time."""

    def get(self, timeout: float) -> RunResult:
        """The next result; ``queue.Empty`` if none came within ``timeout`` seconds."""

    def get_nowait(self) -> RunResult:
        """The next result already here; ``queue.Empty`` if there is none."""

    def alive(self) -> bool:
        """Whether results sent can still arrive."""


class ChunkFuture(Protocol):
    """A chunk's future (a process pool's or Dask's): whether it ended, and how."""

    def done(self) -> bool: ...

    def exception(self) -> BaseException | None: ...


def failed_result(spec: RunSpec, error: str) -> RunResult:
    """A failed result for a run that could not report one itself."""
    return RunResult(spec.run_id, spec.policy, spec.point, spec.seed, "failed", 0.0, error=error)


_WORKER_END: tuple[Connection, Any] | None = None
"""In a local worker: the pipe its results go back on and the lock the workers share."""


def init_worker(sweep_pid: int, writer: Connection, lock: Any) -> None:
    """Worker initialiser: Ctrl-C is the parent's to handle, so workers do not each
    print a traceback (the parent stops them); a worker ends with the sweep process."""
    global _WORKER_END
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    watch_parent(sweep_pid)
    _WORKER_END = (writer, lock)


def stream_chunk(specs: Sequence[RunSpec], fn: RunFn) -> int:
    """Worker side: run a chunk, sending each result back as soon as it is done."""
    if _WORKER_END is None:
        raise RuntimeError("stream_chunk runs only in a LocalExecutor worker")
    writer, lock = _WORKER_END
    for spec in specs:
        data = pickle.dumps(fn(spec), protocol=pickle.HIGHEST_PROTOCOL)
        with lock:  # one message at a time on the shared pipe
            writer.send_bytes(data)
    return len(specs)


class Inbox:
    """This process's end of the result pipe.

    A thread moves whole results from the pipe to a local queue, so waiting
    for results never blocks on a worker that died halfway through sending
    one; the thread ends when every write end is closed.
    """

    def __init__(self, ctx: BaseContext) -> None:
        self.reader, self.writer = ctx.Pipe(duplex=False)
        self.lock = ctx.Lock()
        self.results: queue.SimpleQueue[RunResult] = queue.SimpleQueue()
        self._pump = threading.Thread(target=self._move, name="kossim-results", daemon=True)
        self._pump.start()

    def _move(self) -> None:
        try:
            while True:
                self.results.put(pickle.loads(self.reader.recv_bytes()))
        except (EOFError, OSError):
            return
        finally:
            self.reader.close()

    def get(self, timeout: float) -> RunResult:
        return self.results.get(timeout=timeout)

    def get_nowait(self) -> RunResult:
        return self.results.get_nowait()

    def alive(self) -> bool:
        return self._pump.is_alive()

    def close(self) -> None:
        """Close this process's write end; the pump stops once the workers' are closed too."""
        self.writer.close()


class Collector:
    """Hands each result to ``on_result`` as it arrives and fails the runs of a chunk
    whose worker broke before sending them."""

    def __init__(self, inbox: ResultSource, on_result: OnResult) -> None:
        self.inbox = inbox
        self.on_result = on_result
        self.pending: dict[ChunkFuture, list[RunSpec]] = {}
        self.remaining: Counter[str] = Counter()
        self.undelivered = 0
        self.in_callback = False

    def add(self, future: ChunkFuture, chunk: list[RunSpec]) -> None:
        self.pending[future] = chunk
        self.remaining.update(spec.run_id for spec in chunk)
        self.undelivered += len(chunk)

    def collect(self) -> None:
        """Until every run is delivered (a chunk that sent all its runs has nothing more
        to say, so its future need not be waited for)."""
        while self.pending and self.undelivered:
            try:
                self._deliver(self.inbox.get(timeout=POLL_INTERVAL))
            except queue.Empty:
                self._settle([f for f in self.pending if f.done()])

    def drain(self) -> None:
        """Deliver the results already back (after an interruption)."""
        while True:
            try:
                self._deliver(self.inbox.get_nowait())
            except queue.Empty:
                return

    def abort(self, stop: Callable[[], None]) -> None:
        """After an exception (an interrupt, a failed store): keep the results already
        back, unless storing one is what failed, then ``stop`` the workers."""
        try:
            if not self.in_callback:
                self.drain()
        finally:
            stop()

    def _deliver(self, result: RunResult) -> None:
        if self.remaining[result.run_id] <= 0:
            return
        self.remaining[result.run_id] -= 1
        self.undelivered -= 1
        self.in_callback = True
        self.on_result(result)
        self.in_callback = False

    def _settle(self, done: list[ChunkFuture]) -> None:
        """Retire finished chunks: all sent, or failed with what went wrong."""
        for future in done:
            chunk = self.pending[future]
            missing = [s for s in chunk if self.remaining[s.run_id] > 0]
            if future.exception() is None and missing and self.inbox.alive():
                continue  # sent: still on their way
            error = _chunk_error(future)
            del self.pending[future]
            for spec in missing:
                self._deliver(failed_result(spec, error))


def _chunk_error(future: ChunkFuture) -> str:
    exc = future.exception()
    if exc is None:
        return "the run's result could not be read back from its worker"
    return "".join(traceback.format_exception(exc))


class BatchInbox:
    """Results pickled onto a queue whose every read is a round trip (a Dask queue,
    read in batches): ``read()`` returns all items waiting, perhaps none."""

    def __init__(self, read: Callable[[], list[bytes]]) -> None:
        self._read = read
        self._buffer: deque[bytes] = deque()

    def get(self, timeout: float) -> RunResult:
        if not self._buffer:
            self._buffer.extend(self._read())
        if not self._buffer:
            time.sleep(timeout)
            self._buffer.extend(self._read())
        return self.get_nowait()

    def get_nowait(self) -> RunResult:
        if not self._buffer:
            self._buffer.extend(self._read())
        if not self._buffer:
            raise queue.Empty
        return pickle.loads(self._buffer.popleft())

    def alive(self) -> bool:
        return True
