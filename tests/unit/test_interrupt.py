"""Stopping ``kossim run`` from outside: SIGINT, SIGTERM and ``kill -9`` of the parent.

Each test starts the real command line in its own session on a sweep of
runs that sleep (a test routing component), so they last without using the
CPU, signals it once a run is stored, and checks exit code, files on disk
and that no process of the run is left. Every process group started here is
killed at teardown, whatever happened.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

psutil = pytest.importorskip("psutil")

ROOT = Path(__file__).resolve().parents[2]
N_RUNS = 12
SLOW = f"""\
name: slow
seeds: {N_RUNS}
horizon: 250
warmup: 10
scenario:
  agents:
    - {{group: worker, count: 3, speed: 1.0, capacity: 1}}
  workload:
    arrivals: {{process: poisson, rate: 2.0}}
    tasks:
      - {{type: job, work: {{dist: exponential, mean: 1.0}}}}
policies:
  - {{name: sleepy, dispatch: push, routing: {{id: "tests.plugins:Sleepy", pause: 0.001}}}}
"""
"""12 runs of about half a second each, nearly all of it asleep."""

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="process tree checks: Linux")


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def alive(processes: list[psutil.Process]) -> list[psutil.Process]:
    """Those still running (a zombie waiting to be reaped has ended)."""
    running = []
    for proc in processes:
        try:
            if proc.status() != psutil.STATUS_ZOMBIE:
                running.append(proc)
        except psutil.NoSuchProcess:
            pass
    return running


class Sweep:
    """``kossim run`` of the slow experiment in its own session, output on pipes."""

    def __init__(self, folder: Path, *extra: str, ignore_sigint: bool = False) -> None:
        self.folder = folder
        self.out = folder / "results"
        experiment = folder / "slow.yaml"
        experiment.write_text(SLOW)
        path = [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
        args = [sys.executable, "-m", "kossim", "run", str(experiment), "--out", str(self.out)]
        self.proc = subprocess.Popen(
            [*args, "--jobs", "2", "--no-report", "--no-progress", *extra],
            cwd=folder,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            # As a shell starts a script's background job: Python then leaves SIGINT ignored.
            preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
            if ignore_sigint
            else None,
        )

    def stored(self) -> int:
        return len(list((self.out / "runs").glob("*.json")))

    def running_with_workers(self) -> list[psutil.Process]:
        """Wait until both workers run and a run is stored; the run's processes."""
        family: list[psutil.Process] = []

        def ready() -> bool:
            nonlocal family
            assert self.proc.poll() is None, self.proc.communicate()
            family = psutil.Process(self.proc.pid).children(recursive=True)
            return len(family) >= 4 and self.stored() >= 1  # tracker, server, 2 workers

        wait_for(ready, 120, "the sweep to store its first run")
        return family

    def kill_group(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)


@pytest.fixture
def sweeps(tmp_path: Path) -> Iterator[Callable[..., Sweep]]:
    """``sweeps(*extra, ignore_sigint=False)`` starts a sweep; all are killed at teardown."""
    started: list[Sweep] = []

    def start(*extra: str, ignore_sigint: bool = False) -> Sweep:
        sweep = Sweep(tmp_path, *extra, ignore_sigint=ignore_sigint)
        started.append(sweep)
        return sweep

    yield start
    for sweep in started:
        sweep.kill_group()


DASK = pytest.param(["--executor", "dask"], marks=pytest.mark.slow, id="dask")


@pytest.mark.parametrize("executor", [pytest.param([], id="local"), DASK])
def test_kill_9_of_the_parent_ends_every_process_of_the_run(
    sweeps: Callable[..., Sweep], executor: list[str]
) -> None:
    """Fork server, resource tracker and workers are gone within 5 s, and the pipes
    close, so a wrapper waiting on the run's output does not hang."""
    if executor:
        pytest.importorskip("distributed")
    sweep = sweeps(*executor)
    family = sweep.running_with_workers()
    sweep.proc.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    sweep.proc.communicate(timeout=10)  # raises TimeoutExpired while a pipe is held
    assert time.monotonic() - killed < 5
    wait_for(lambda: not alive(family), 5, "the run's processes to end")


@pytest.mark.parametrize(
    ("signum", "code", "executor", "ctrl_c"),
    [
        pytest.param(signal.SIGINT, 130, [], False, id="INT"),
        pytest.param(signal.SIGTERM, 143, [], False, id="TERM"),
        pytest.param(signal.SIGTERM, 143, ["--executor", "dask"], False, id="TERM-dask",
                     marks=pytest.mark.slow),
        pytest.param(signal.SIGINT, 130, ["--executor", "dask"], True, id="ctrl-c-dask",
                     marks=pytest.mark.slow),
    ],
)  # fmt: skip
def test_a_signal_stops_the_sweep_and_resume_completes_it(
    sweeps: Callable[..., Sweep], signum: int, code: int, executor: list[str], ctrl_c: bool
) -> None:
    """The signal, sent to the run process alone (even one started with SIGINT
    ignored), or to its whole process group as Ctrl-C in a terminal does, stops
    the sweep at once: finished runs stay on disk, every child ends, no worker
    prints a traceback, the exit code is 128 + signal; ``--resume`` then runs
    only the rest."""
    if executor:
        pytest.importorskip("distributed")
    sweep = sweeps(*executor, ignore_sigint=not ctrl_c)
    family = sweep.running_with_workers()
    if ctrl_c:
        os.killpg(sweep.proc.pid, signum)
    else:
        sweep.proc.send_signal(signum)
    _, err = sweep.proc.communicate(timeout=30)
    assert sweep.proc.returncode == code, err
    assert "run again with --resume" in err.decode()
    assert "Traceback" not in err.decode()
    wait_for(lambda: not alive(family), 5, "the run's processes to end")
    kept = sweep.stored()
    assert 1 <= kept < N_RUNS
    if executor:
        return  # resuming does not depend on the executor: the local cases cover it

    again = sweeps("--resume")
    _, err = again.proc.communicate(timeout=120)
    assert again.proc.returncode == 0, err
    assert f"{N_RUNS - kept} ok, 0 failed, {kept} resumed" in err.decode()
    manifest = json.loads((again.out / "manifest.json").read_text())
    assert manifest["n_ok"] == N_RUNS


def test_a_stop_signal_raises_once_and_names_its_exit_code() -> None:
    """Within the block the first SIGINT or SIGTERM raises Interrupted (exit 130 or 143,
    also through a chained exception); a second one cannot cut the cleanup short; the
    previous handlers come back afterwards."""
    from kossim.lab.interrupt import Interrupted, exit_code, stop_on_signals

    before = signal.getsignal(signal.SIGTERM)
    with stop_on_signals():
        with pytest.raises(Interrupted) as info:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler raises at the next bytecode boundary
        os.kill(os.getpid(), signal.SIGINT)  # during cleanup: ignored
        time.sleep(0.1)
    assert signal.getsignal(signal.SIGTERM) == before
    assert exit_code(info.value) == 143
    try:
        raise KeyboardInterrupt("sweep stopped") from info.value
    except KeyboardInterrupt as chained:
        assert exit_code(chained) == 143
    assert exit_code(KeyboardInterrupt()) == 130
