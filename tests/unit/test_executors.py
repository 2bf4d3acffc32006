"""Executors: every run reported once, failures outside a run recorded, Ctrl-C stops promptly."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from kossim.errors import KossimInputError
from kossim.lab.executors import (
    MAX_CHUNK,
    DaskExecutor,
    LocalExecutor,
    SerialExecutor,
    chunk_size,
    make_executor,
)
from kossim.runspec import RunResult, RunSpec
from tests.plugins import dying_result, quick_result, sleepy_result


def _specs(n: int) -> list[RunSpec]:
    return [RunSpec.make({"n": n}, "p", (("x", 1),), seed) for seed in range(n)]


def _collect(executor: SerialExecutor | LocalExecutor, fn: object, specs: list[RunSpec]) -> list:
    got: list[RunResult] = []
    executor.run(fn, specs, got.append)  # type: ignore[arg-type]
    return got


@pytest.mark.parametrize("executor", [SerialExecutor(), LocalExecutor(2)], ids=["serial", "local"])
def test_each_run_is_reported_once(executor: SerialExecutor | LocalExecutor) -> None:
    """Whatever the completion order, every spec comes back exactly once, in this process."""
    specs = _specs(23)
    got = _collect(executor, quick_result, specs)
    assert sorted(r.run_id for r in got) == sorted(s.run_id for s in specs)
    assert all(r.status == "ok" and r.metrics[0][2] == r.seed for r in got)


def test_nothing_to_run_starts_no_workers() -> None:
    """An empty (fully resumed) sweep returns at once."""
    assert _collect(LocalExecutor(2), quick_result, []) == []


def test_a_dead_worker_fails_its_runs_and_the_sweep_goes_on() -> None:
    """A worker killed mid-run becomes failed results with a traceback, not an exception."""
    specs = _specs(6)
    got = _collect(LocalExecutor(2, chunk=1), dying_result, specs)
    assert sorted(r.run_id for r in got) == sorted(s.run_id for s in specs)
    dead = next(r for r in got if r.seed == 3)
    assert dead.status == "failed"
    assert "BrokenProcessPool" in (dead.error or "") or "terminated" in (dead.error or "")


def test_ctrl_c_cancels_pending_runs_and_propagates(tmp_path: Path) -> None:
    """KeyboardInterrupt while results arrive ends the workers; no further run starts."""
    executor = LocalExecutor(2, chunk=1)
    specs = [RunSpec.make({"marks": str(tmp_path)}, "p", (), seed) for seed in range(12)]
    got: list[RunResult] = []

    def interrupt(result: RunResult) -> None:
        got.append(result)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        executor.run(sleepy_result, specs, interrupt)
    started = sorted(tmp_path.glob("*.started"))
    time.sleep(1.5)  # a surviving worker would start its next run by now
    assert len(got) == 1
    assert sorted(tmp_path.glob("*.started")) == started
    assert len(started) <= 4  # the delivered run, the other worker's, at most two more in flight


@pytest.mark.parametrize(
    "kind",
    ["local", pytest.param("dask", marks=pytest.mark.slow)],
)
def test_results_of_a_chunk_come_back_one_by_one(tmp_path: Path, kind: str) -> None:
    """A chunk's runs are delivered as each ends, not when the chunk does, so a sweep
    stopped mid-chunk keeps the runs that finished."""
    if kind == "dask":
        pytest.importorskip("distributed")
    executor = LocalExecutor(1, chunk=3) if kind == "local" else DaskExecutor(jobs=1, chunk=3)
    specs = [RunSpec.make({"marks": str(tmp_path)}, "p", (), seed) for seed in range(3)]
    arrived: list[float] = []
    executor.run(sleepy_result, specs, lambda r: arrived.append(time.monotonic()))
    assert len(arrived) == 3
    assert arrived[1] - arrived[0] > 0.5 and arrived[2] - arrived[1] > 0.5  # 1 s runs


def test_chunks_amortise_dispatch_but_keep_workers_busy() -> None:
    """Small sweeps go one run per dispatch; large ones at most MAX_CHUNK."""
    assert chunk_size(4, 2) == 1
    assert chunk_size(40, 2) == 5
    assert chunk_size(10_000, 2) == MAX_CHUNK
    assert chunk_size(0, 2) == 1


def test_make_executor_checks_its_options() -> None:
    """Executor kinds from the command line, and the mistakes users make with them."""
    assert make_executor("serial").name == "serial"
    local = make_executor("local", jobs=3)
    assert (local.name, local.jobs) == ("local", 3)
    dask = make_executor("dask", jobs=2, address="tcp://127.0.0.1:8786")
    assert isinstance(dask, DaskExecutor) and dask.address == "tcp://127.0.0.1:8786"
    with pytest.raises(KossimInputError, match="allowed: serial, local, dask"):
        make_executor("threads")
    with pytest.raises(KossimInputError, match="--executor dask"):
        make_executor("local", address="tcp://127.0.0.1:8786")
    with pytest.raises(KossimInputError, match="at least 1"):
        make_executor("local", jobs=0)


def test_missing_dask_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without dask.distributed the error names the extra to install, not an ImportError."""
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(KossimInputError, match=r"kossim\[dask\]"):
        DaskExecutor(jobs=1).run(quick_result, _specs(1), lambda r: None)


def test_dask_workers_leave_ctrl_c_to_the_sweep_and_close_quietly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A private Dask worker ignores SIGINT, and the one benign shutdown error is
    dropped while the worker closes, and only then."""
    import inspect
    import logging
    import signal
    from types import SimpleNamespace

    distributed = pytest.importorskip("distributed")
    from distributed.core import Status

    from kossim.lab.dask_workers import HEARTBEAT_FAILED, KossimWorkers

    assert HEARTBEAT_FAILED in inspect.getsource(distributed.Worker.heartbeat)
    worker = SimpleNamespace(status=Status.running)
    logger = logging.getLogger("distributed.worker")
    before, sigint = list(logger.filters), signal.getsignal(signal.SIGINT)
    KossimWorkers().setup(worker)
    try:
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
        with caplog.at_level(logging.ERROR, logger="distributed.worker"):
            logger.error(HEARTBEAT_FAILED)  # a running worker: the scheduler is really gone
            worker.status = Status.closing
            logger.error(HEARTBEAT_FAILED)  # its own close aborted it: dropped
            logger.error("Unexpected exception during heartbeat. Closing worker.")
    finally:
        logger.filters[:] = before
        signal.signal(signal.SIGINT, sigint)
    assert [r.getMessage() for r in caplog.records] == [
        HEARTBEAT_FAILED,
        "Unexpected exception during heartbeat. Closing worker.",
    ]
