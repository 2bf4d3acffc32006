"""The engine: ``simulate(RunSpec) -> RunResult``.

One ``simpy.Environment`` per run. The engine never reads YAML: it receives
the resolved configuration as plain data, validates it into models once, and
builds its own hot-path objects from them.
"""

from __future__ import annotations

import os
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from kossim.analysis.metrics import RunFacts, compute_metrics, metrics_of, sojourn_quantiles
from kossim.config.models import Experiment
from kossim.runspec import MetricRow, RunResult, RunSpec
from kossim.sim.eventlog import EventLog, SpillingEventLog
from kossim.sim.recorder import columns_of
from kossim.sim.roles import role_metrics
from kossim.sim.stream import StreamRecorder, TracingStreamRecorder, trace_rows
from kossim.sim.task import DONE
from kossim.sim.timeline import marks_series
from kossim.sim.world import World

if TYPE_CHECKING:
    from kossim.sim.tracefile import TraceWriter

__all__ = ["World", "simulate", "simulate_world"]


def _build(spec: RunSpec, log: EventLog | None = None) -> tuple[Experiment, World]:
    exp = Experiment.model_validate(spec.config, context={"run": True})
    return exp, World(exp, exp.policy(spec.policy), spec.seed, trace=spec.trace, log=log)


def simulate_world(spec: RunSpec) -> tuple[World, dict[str, np.ndarray]]:
    """Run ``spec`` and return the world and every task's columns (for tests and tracing)."""
    exp, world = _build(spec)
    world.run()
    return world, _columns(exp, world)


def _columns(exp: Experiment, world: World) -> dict[str, np.ndarray]:
    cols = columns_of(
        world.recorder,
        world.live_tasks(),
        [t.priority for t in world.task_types],
        exp.warmup_tasks,
        exp.fixed_warmup,
    )
    if exp.auto_warmup:
        _auto_truncate(world, cols)
    return cols


def _auto_truncate(world: World, cols: dict[str, np.ndarray]) -> None:
    """MSER-5 on sojourn times in arrival order; measure from the nearest sample time on.

    Snapping to the sampling grid keeps busy-time and message counts exact at
    the cut (they are recorded there), at the cost of at most half a grid step.
    The start of the run is a grid point too: a cut nearer to it than to the
    first sample drops nothing, and ``warmup_time`` is then 0 (MSER-5 found no
    warm-up worth a grid step), never the first step by default.
    """
    from kossim.analysis.stats import (  # scipy and pandas: only when a run needs them
        mser5,
        nearest_index,
    )

    done = cols["state"] == DONE
    sojourn = (cols["end"] - cols["arrival"])[done]
    _, cut = mser5(sojourn, cols["arrival"][done])
    times = [s[0] for s in world.snapshots]
    if cut is None or not times:
        return
    index = nearest_index([0.0, *times], cut) - 1  # -1: the start, before any snapshot
    if index < 0:
        return
    world.truncate_at(index)
    cols["measured"] = cols["id"] >= world._warmup_tasks


def simulate(spec: RunSpec) -> RunResult:
    """Simulate one run; a failure inside it is recorded, never raised."""
    t0 = time.perf_counter()
    cols: dict[str, np.ndarray] | None = None
    writers = _trace_writers(spec) if spec.trace else None
    try:
        log = SpillingEventLog(writers["events"]) if writers is not None else None
        exp, world = _build(spec, log)
        # Per-task columns only where the run needs them: MSER-5's series (warmup: auto)
        # and roles' per-task records; otherwise streamed tallies (a trace streams to disk).
        if exp.auto_warmup or world.role_physics is not None:
            world.run()
            cols = _columns(exp, world)
            metrics = compute_metrics(cols, _facts(world))
            quantiles = sojourn_quantiles(cols)
            if writers is not None:
                writers["tasks"].write(_trace(world, cols))
        else:
            priorities = [t.priority for t in world.task_types]
            window: Callable[[], float | None] = lambda: world.measure_start  # noqa: E731
            rec = (
                StreamRecorder(priorities, exp.warmup_tasks, exp.fixed_warmup, window)
                if writers is None
                else TracingStreamRecorder(
                    priorities,
                    exp.warmup_tasks,
                    exp.fixed_warmup,
                    window,
                    writers["tasks"],
                    [a.name for a in world.agents],
                    [t.name for t in world.task_types],
                )
            )
            world.recorder = rec
            world.run()
            summary = rec.finish(world.live_tasks())
            metrics = metrics_of(summary, _facts(world))
            quantiles = summary.sojourn_quantiles()
        metrics.append(("warmup_time", "all", float(world.measure_start or 0.0)))
        metrics.extend(_behaviour_rows(world))
        if world.role_physics is not None:
            assert cols is not None
            metrics.extend(
                role_metrics(world.role_physics, cols, [t.name for t in world.task_types])
            )
    except Exception:
        if writers is not None:
            for writer in writers.values():
                writer.abort()
        return RunResult(
            spec.run_id,
            spec.policy,
            spec.point,
            spec.seed,
            "failed",
            time.perf_counter() - t0,
            error=traceback.format_exc(),
        )
    recorder = world.recorder
    result = RunResult(
        spec.run_id,
        spec.policy,
        spec.point,
        spec.seed,
        "ok",
        time.perf_counter() - t0,
        metrics=metrics,
        counters={
            "events_end_time": recorder.end_time,
            "arrivals": float(world.arrived),
            "warmup_time": float(world.measure_start or 0.0),
        },
        distributions={"sojourn": quantiles},
        timeseries={
            "in_system": (list(recorder.ts_times), [float(v) for v in recorder.ts_values]),
            **marks_series(world),  # the timeline's events, for the report's timelines
        },
    )
    if writers is not None:
        assert log is not None
        log.spill()
        result.tasks = writers["tasks"].close()
        result.events = writers["events"].close()
    return result


def _trace_writers(spec: RunSpec) -> dict[str, TraceWriter]:
    """Parquet writers for the run's task trace and execution log: spill files in
    ``spec.spill`` (a folder the store can rename from), else in memory."""
    from kossim.sim.tracefile import EVENT_SCHEMA, TASK_SCHEMA, TraceWriter

    def where(kind: str) -> Path | None:
        if not spec.spill:
            return None
        return Path(spec.spill) / f".{spec.run_id}.{kind}.{os.getpid()}.spill.tmp"

    return {
        "tasks": TraceWriter(TASK_SCHEMA, where("tasks")),
        "events": TraceWriter(EVENT_SCHEMA, where("events")),
    }


def _behaviour_rows(world: World) -> list[MetricRow]:
    """Result quality, when an agent can return bad results or the coordinator judges
    them (a behaviour's own metrics come through ``Behaviour.metric_rows``)."""
    judges = getattr(world.coordinator, "judges_results", False)
    if judges or any(g.bad_results > 0 for g in world.exp.scenario.agents):
        return world.results.rows()
    return []


def _facts(world: World) -> RunFacts:
    start = world.measure_start if world.measure_start is not None else world.recorder.end_time
    by_kind = world.message_counts()
    return RunFacts(
        arrived_measured=world.arrived_measured,
        window_start=start,
        window_end=world.recorder.end_time,
        agent_names=[a.name for a in world.agents],
        agent_busy=[a.area - a.area0 for a in world.agents],
        agent_down=[a.down_time - a.down0 for a in world.agents],
        agent_capacity=[a.capacity for a in world.agents],
        messages=sum(by_kind.values()),
        type_names=[t.name for t in world.task_types],
        messages_by_kind=by_kind,
        coordination=world.ledger.figures(),
        bundles=world.ledger.bundle_figures(start, world.recorder.end_time),
        max_hops=max((getattr(a.behaviour, "max_hops", 0) for a in world.agents), default=0),
        behaviour_rows=[
            row
            for actor in (world.coordinator_actor, world.detector_actor, *world.services)
            if hasattr(actor.behaviour, "metric_rows")  # a duck-typed behaviour may lack it
            for row in actor.behaviour.metric_rows(start, world.recorder.end_time)
        ]
        + (
            world.arbitration.metric_rows(start, world.recorder.end_time)
            if world.arbitration
            else []
        )
        + [
            row
            for source in world.row_sources
            for row in source.metric_rows(start, world.recorder.end_time)
        ],
    )


def _trace(world: World, cols: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    names = np.array([a.name for a in world.agents] + [""], dtype=object)
    return trace_rows(cols, names, np.array([t.name for t in world.task_types], dtype=object))
