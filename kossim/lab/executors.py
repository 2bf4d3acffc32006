"""Where runs execute: in this process, in local worker processes, or on a Dask cluster.

Every executor offers one verb, ``run(fn, specs, on_result)``: call ``fn`` on
each spec and hand every result to ``on_result`` in *this* process as soon as
it is back, so the caller can store it at once and an interrupted sweep keeps
what finished. Completion order differs between executors and between runs;
determinism comes from the store, which sorts by plan order when it
aggregates.

Runs travel in chunks: a short run costs less than the round trip of handing
it to a worker, so several runs share one dispatch. Results do not wait for
their chunk: each comes back as its run ends (:mod:`kossim.lab.result_stream`),
so a stopped sweep keeps every run that finished. An error outside ``fn`` (a
worker process that died, a lost Dask worker) turns the runs of its chunk not
yet reported into failed results with the traceback; the sweep goes on and
``--resume`` re-runs them. Ctrl-C (``KeyboardInterrupt``, also raised for SIGTERM by
:mod:`kossim.lab.interrupt`) cancels what has not started, keeps what finished,
stops the workers and propagates, so the caller can say how to resume.
Local workers end by themselves when the sweep process dies
(:mod:`kossim.lab.lifeline`), even after ``kill -9``.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack, contextmanager
from multiprocessing import forkserver
from typing import Any, Protocol

from kossim.errors import KossimInputError
from kossim.lab.result_stream import (
    BatchInbox,
    Collector,
    Inbox,
    failed_result,
    init_worker,
    stream_chunk,
)
from kossim.runspec import RunResult, RunSpec

__all__ = [
    "DASK_MAX_CHUNK",
    "MAX_CHUNK",
    "DaskExecutor",
    "Executor",
    "LocalExecutor",
    "OnResult",
    "RunFn",
    "SerialExecutor",
    "default_jobs",
    "failed_result",
    "make_executor",
]

RunFn = Callable[[RunSpec], RunResult]
OnResult = Callable[[RunResult], None]

MAX_CHUNK = 8
"""Upper bound on runs per dispatch to local processes: bigger chunks save little
once the round trip (~0.3 ms) is amortised, and cost progress granularity and
lost work on Ctrl-C."""
DASK_MAX_CHUNK = 32
"""The same for Dask, whose round trip through the scheduler costs ~10 ms a task."""
CHUNKS_PER_WORKER = 4
"""Aim for several chunks per worker so uneven run lengths still balance."""
PRELOAD = ("kossim.sim",)
"""Modules the fork server imports once, so each worker starts warm (the
engine's imports take seconds; forking a loaded server takes milliseconds)."""


class Executor(Protocol):
    """Runs specs somewhere and reports each result back to this process."""

    name: str
    jobs: int

    def run(self, fn: RunFn, specs: Sequence[RunSpec], on_result: OnResult) -> None: ...


def default_jobs() -> int:
    """Cores this process may use (the affinity mask, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on every platform
        return max(1, os.cpu_count() or 1)


def chunk_size(n_specs: int, workers: int, largest: int = MAX_CHUNK) -> int:
    """Runs per dispatch: about ``CHUNKS_PER_WORKER`` chunks per worker, at most ``largest``."""
    return max(1, min(largest, math.ceil(n_specs / (max(1, workers) * CHUNKS_PER_WORKER))))


def chunked(specs: Sequence[RunSpec], size: int) -> list[list[RunSpec]]:
    return [list(specs[i : i + size]) for i in range(0, len(specs), size)]


class SerialExecutor:
    """Runs in this process, one after another: the reference, and the debugger's friend."""

    name = "serial"
    jobs = 1

    def run(self, fn: RunFn, specs: Sequence[RunSpec], on_result: OnResult) -> None:
        for spec in specs:
            on_result(fn(spec))


def _mp_context(preload: Sequence[str] = PRELOAD) -> multiprocessing.context.BaseContext:
    """A fork server preloaded with the engine where available, else spawn.

    Plain fork is unsafe once the parent runs threads (the progress display,
    a Dask client); a fork server is a clean single-threaded process. The
    preload list only counts when this call starts the server; a server
    already running (one per process) is reused as it is.
    """
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(list(preload))
    return ctx


class LocalExecutor:
    """Runs in ``jobs`` worker processes on this machine.

    Chunks go out through a process pool; each result comes back on its own
    the moment its run ends (:mod:`kossim.lab.result_stream`), so a finished run is
    stored even when the rest of its chunk never completes.
    """

    name = "local"

    def __init__(self, jobs: int | None = None, chunk: int | None = None) -> None:
        if jobs is not None and jobs < 1:
            raise ValueError(f"jobs must be at least 1 (got {jobs})")
        self.jobs = jobs or default_jobs()
        self.chunk = chunk

    def run(self, fn: RunFn, specs: Sequence[RunSpec], on_result: OnResult) -> None:
        chunks = chunked(specs, self.chunk or chunk_size(len(specs), self.jobs))
        if not chunks:
            return
        ctx = _mp_context()
        inbox = Inbox(ctx)
        pool = ProcessPoolExecutor(
            min(self.jobs, len(chunks)),
            mp_context=ctx,
            initializer=init_worker,
            initargs=(os.getpid(), inbox.writer, inbox.lock),
        )
        collector = Collector(inbox, on_result)

        def stop() -> None:
            try:
                _stop_pool(pool, collector.pending)
            finally:
                inbox.close()

        try:
            for chunk in chunks:
                collector.add(pool.submit(stream_chunk, chunk, fn), chunk)
            collector.collect()
        except BaseException:
            collector.abort(stop)
            raise
        inbox.close()
        pool.shutdown(wait=True)


def _stop_pool(pool: ProcessPoolExecutor, futures: Iterable[Any]) -> None:
    """Cancel what has not started and end the workers now.

    ``shutdown`` alone would wait for running chunks (at exit, too), which for
    long runs means a Ctrl-C that seems ignored. There is no public way to end
    a pool's workers before Python 3.14, hence ``_processes``.
    """
    for future in futures:
        future.cancel()
    processes = list(getattr(pool, "_processes", {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(timeout=5)


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise KossimInputError.single(
            "the dask executor needs dask.distributed: pip install 'kossim[dask]'",
            path="--executor",
            got="dask",
        ) from None
    return distributed


class DaskExecutor:
    """Runs on a Dask cluster: the scheduler at ``address``, or a local cluster of
    ``jobs`` single-threaded worker processes on loopback when there is none.

    Workers must be able to import kossim (and any ``module:Class`` policy
    code the experiment names), at the same version as this process.
    """

    name = "dask"

    def __init__(
        self, address: str | None = None, jobs: int | None = None, chunk: int | None = None
    ) -> None:
        if jobs is not None and jobs < 1:
            raise ValueError(f"jobs must be at least 1 (got {jobs})")
        self.address = address
        self.jobs = jobs or default_jobs()
        self.chunk = chunk

    def run(self, fn: RunFn, specs: Sequence[RunSpec], on_result: OnResult) -> None:
        if not specs:
            return
        distributed = _import_distributed()
        from kossim.lab.dask_workers import stream_chunk as stream_to_queue

        with ExitStack() as after_close, self._client(distributed) as client:
            workers = sum(client.nthreads().values()) or self.jobs
            chunks = chunked(specs, self.chunk or chunk_size(len(specs), workers, DASK_MAX_CHUNK))
            name = f"kossim-results-{uuid.uuid4().hex}"
            results = distributed.Queue(name, client=client)
            collector = Collector(BatchInbox(lambda: results.get(batch=True)), on_result)
            futures = client.map(stream_to_queue, chunks, fn=fn, queue_name=name, pure=False)
            for future, chunk in zip(futures, chunks, strict=True):
                collector.add(future, chunk)

            def stop() -> None:
                try:
                    client.cancel(futures)
                finally:
                    # Tearing down mid-run makes Dask log cancelled tasks and killed
                    # workers at length; the caller reports the interruption itself.
                    after_close.enter_context(_quiet_logger("distributed"))

            try:
                collector.collect()
            except BaseException:
                collector.abort(stop)
                raise
            finally:
                results.close()  # the scheduler drops the queue (a shared one lives on)

    @contextmanager
    def _client(self, distributed: Any) -> Iterator[Any]:
        """A client of the given scheduler, or of a private local cluster closed afterwards."""
        if self.address:
            try:
                client = distributed.Client(self.address)
            except (OSError, TimeoutError) as exc:
                raise KossimInputError.single(
                    f"cannot reach the Dask scheduler: {exc}", path="--address", got=self.address
                ) from None
            with client:
                yield client
            return
        from kossim.lab.dask_workers import KossimWorkers

        with (
            _local_cluster(distributed, self.jobs) as cluster,
            distributed.Client(cluster) as client,
        ):
            client.register_plugin(KossimWorkers())
            yield client


@contextmanager
def _quiet_logger(name: str) -> Iterator[None]:
    """Only critical messages from logger ``name`` until the block ends."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _local_cluster(distributed: Any, jobs: int) -> Any:
    """A private cluster on loopback whose workers fork from a preloaded server.

    Dask spawns workers by default, and each then imports Dask and the engine
    anew (seconds apiece). Forking them from a server that imported both once
    starts a cluster in about a second. The price, per Dask's docs: variables
    from ``distributed.nanny.pre-spawn-environ`` (thread caps for numeric
    libraries) are not applied; kossim's runs are single-threaded Python.
    """
    import dask

    ctx = _mp_context((*PRELOAD, "distributed"))
    method = ctx.get_start_method()
    if method == "forkserver":
        forkserver.ensure_running()  # now, so Dask's own preload list does not replace ours
    with dask.config.set({"distributed.worker.multiprocessing-method": method}):
        return distributed.LocalCluster(
            n_workers=jobs,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            silence_logs=logging.ERROR,  # run failures come back as failed runs anyway
        )


def make_executor(kind: str, jobs: int | None = None, address: str | None = None) -> Executor:
    """The executor named on the command line (``--executor``, ``--jobs``, ``--address``)."""
    if address and kind != "dask":
        raise KossimInputError.single(
            "--address names a Dask scheduler; use it with --executor dask",
            path="--address",
            got=address,
        )
    if jobs is not None and jobs < 1:
        raise KossimInputError.single("--jobs must be at least 1", path="--jobs", got=jobs)
    if kind == "serial":
        return SerialExecutor()
    if kind == "local":
        return LocalExecutor(jobs)
    if kind == "dask":
        return DaskExecutor(address, jobs)
    raise KossimInputError.single(
        "unknown executor; allowed: serial, local, dask", path="--executor", got=kind
    )
