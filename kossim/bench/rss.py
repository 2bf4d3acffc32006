"""Peak resident memory of one run, in a fresh interpreter per measurement.

The parent starts ``python -c ...`` with a JSON job; the child imports what the
job needs, collects garbage, resets the kernel's high-water mark to the
current RSS (``/proc/self/clear_refs``, Linux) and reads that RSS as the
post-import *base*, runs the job once and reads ``VmHWM`` of
``/proc/self/status`` as the *peak*: the whole process's peak RSS, imports
included. Where ``/proc`` is missing, ``getrusage(RUSAGE_SELF).ru_maxrss``
stands in for both (no reset: the peak then covers the imports too). The
child also reports the job's CPU time (``time.process_time``) and how it
measured (``"VmHWM"`` or ``"ru_maxrss"``).

Jobs: ``world`` (``simulate_world`` of a config: the engine and its task
columns), ``run`` (``simulate``, metrics included, after importing
``kossim.cli`` and ``kossim.lab`` as ``kossim run`` does), ``command`` (the
whole ``kossim run --no-report --executor serial`` command on the config,
written to a temporary folder: its imports happen inside the job, so the peak
is the command's from interpreter start to the printed summary) and ``simpy`` (the
hand-written SimPy model of :mod:`kossim.bench.simpy_model`, loaded from its
file). The child runs this file as a script, so its baseline holds only what
the job imports, not the ``kossim.bench`` package (numpy, scipy, rich).
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["MIB", "Rss", "measure_rss", "rss_child"]

MIB = 1024 * 1024


@dataclass(frozen=True)
class Rss:
    """One measurement in a fresh interpreter; sizes in MiB."""

    base_mib: float
    """RSS after imports, just before the job."""
    peak_mib: float
    """Peak RSS of the whole process (imports included)."""
    cpu_seconds: float
    """CPU time of the job alone."""
    method: str

    @property
    def growth_mib(self) -> float:
        return max(0.0, self.peak_mib - self.base_mib)


def _proc(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise OSError(f"no {key} in /proc/self/status")


def _prepare(job: dict[str, Any]) -> Any:
    """Import what ``job`` needs and return the callable that runs it."""
    kind = job["kind"]
    if kind == "simpy":  # loaded from its file: the kossim.bench package imports scipy
        import importlib.util

        where = Path(__file__).with_name("simpy_model.py")
        found = importlib.util.spec_from_file_location("_bench_simpy_model", where)
        assert found is not None and found.loader is not None
        module = importlib.util.module_from_spec(found)
        found.loader.exec_module(module)
        args = job["args"]
        return lambda: module.simulate_mmc(*args)
    if kind == "command":
        return lambda: _command(job["config"])
    from kossim.runspec import RunSpec

    spec = RunSpec(run_id="bench", policy=job["policy"], point=(), seed=0, config=job["config"])
    if kind == "world":
        from kossim.sim import simulate_world

        return lambda: simulate_world(spec)
    if kind == "run":
        # what `kossim run` has loaded before it simulates
        import kossim.cli
        import kossim.lab  # noqa: F401
        from kossim.sim import simulate

        def run() -> None:
            result = simulate(spec)
            if result.status != "ok":
                raise RuntimeError(result.error)

        return run
    raise ValueError(f"unknown rss job kind {kind!r}")


def _command(config: dict[str, Any]) -> None:
    """``kossim run EXP --no-report --executor serial`` on ``config`` (its output dropped)."""
    import contextlib
    import io
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        experiment = Path(folder) / "experiment.yaml"
        experiment.write_text(json.dumps(config))  # JSON is YAML
        argv = ["run", str(experiment), "--out", str(Path(folder) / "out"), "--no-report"]
        argv += ["--executor", "serial", "--no-progress"]
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            from kossim.cli import app

            try:
                app(argv)
            except SystemExit as exc:
                if exc.code:
                    raise RuntimeError(f"kossim run exited with {exc.code}") from None


def rss_child(text: str) -> None:
    """Entry of the fresh interpreter: run the JSON job ``text``, print JSON figures."""
    job = json.loads(text)
    fn = _prepare(job)
    gc.collect()
    try:  # "5" resets the peak-RSS mark to the current RSS (Linux)
        Path("/proc/self/clear_refs").write_text("5")
        base, method = _proc("VmRSS"), "VmHWM"
    except OSError:
        import resource

        unit = 1 if sys.platform == "darwin" else 1024
        base, method = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * unit, "ru_maxrss"
    cpu = time.process_time()
    fn()
    cpu = time.process_time() - cpu
    if method == "VmHWM":
        peak = _proc("VmHWM")
    else:
        import resource

        unit = 1 if sys.platform == "darwin" else 1024
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * unit
    print(json.dumps({"base": base, "peak": peak, "cpu": cpu, "method": method}))


def measure_rss(job: dict[str, Any]) -> Rss:
    """Run ``job`` (see the module docstring) in a fresh interpreter; its figures."""
    root = str(Path(__file__).resolve().parent.parent.parent)
    path = os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
    proc = subprocess.run(  # run as a script: importing kossim.bench would load scipy
        [sys.executable, __file__, json.dumps(job)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": path},
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"rss measurement failed:\n{proc.stderr[-2000:]}")
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    return Rss(got["base"] / MIB, got["peak"] / MIB, float(got["cpu"]), got["method"])


if __name__ == "__main__":
    rss_child(sys.argv[1])
