"""Retry with at-least-once delivery never loses a task (Hypothesis, derandomized in CI).

Whatever the failure schedule (agent clocks, node clocks taking several agents
down together, tasks lost or suspended with them), the network latency, the
attempt timeout and the backoff, every arrival is accounted for exactly once:
arrived = completed + abandoned + rejected + in_flight, ``lost`` is 0, no
task is recorded twice although timed-out attempts are re-sent as copies
(``duplicates``), and every abandoned task was dead-lettered, with its reason in
the execution log. Every retry waits within ``[0, cap]``.

With at-most-once delivery no copy is ever made, and every task abandoned was
given up (an attempt that may have run) or dead-lettered.
"""

from __future__ import annotations

import json
from typing import Any
from unittest import mock

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from kossim.runspec import RunSpec
from kossim.sim import simulate, simulate_world
from kossim.sim.recorder import Recorder
from kossim.sim.task import ABANDONED, DONE, Task
from tests.property.test_conservation import guarded_engine, scenarios


def _clock(draw: st.DrawFn, mode: str, attempts: int) -> dict[str, Any]:
    return {
        "up": {"dist": "exponential", "mean": draw(st.sampled_from([3.0, 10.0, 30.0]))},
        "down": {"dist": "exponential", "mean": draw(st.sampled_from([0.5, 2.0, 6.0]))},
        "on_failure": mode,
        "detect": {"dist": "constant", "value": 0.5},
        "max_attempts": attempts,
    }


@st.composite
def retry_scenarios(draw: st.DrawFn) -> dict[str, Any]:
    """A random conservation scenario whose agents sit on two nodes, with agent and/or node
    failure clocks (requeue or resume), latency, and an at-least-once retry component."""
    cfg = draw(scenarios())
    sc = cfg["scenario"]
    sc["nodes"] = [{"name": "n0"}, {"name": "n1"}]
    for group in sc["agents"]:
        group["node"] = draw(st.sampled_from(["n0", "n1"]))
    mode = draw(st.sampled_from(["requeue", "resume"]))
    attempts = draw(st.integers(1, 4))  # the scenario's: unused once a retry component decides
    failures: dict[str, Any] = {}
    which = draw(st.sampled_from(["agents", "nodes", "both"]))
    if which in ("agents", "both"):
        failures["agents"] = _clock(draw, mode, attempts)
    if which in ("nodes", "both"):
        failures["nodes"] = _clock(draw, mode, attempts)
    sc["failures"] = failures
    latency = draw(st.sampled_from([0.0, 0.05, 0.3]))
    sc["network"] = {"latency": {"dist": "exponential", "mean": latency}} if latency else {}
    retry: dict[str, Any] = {
        "id": draw(st.sampled_from(["immediate", "backoff"])),
        "max_attempts": draw(st.integers(1, 6)),
        "timeout": draw(st.sampled_from([None, 0.5, 2.0, 8.0])),
    }
    if retry["id"] == "backoff":
        base = draw(st.sampled_from([0.1, 1.0]))
        retry.update(
            base=base,
            cap=base * draw(st.sampled_from([1.0, 5.0, 50.0])),
            jitter=draw(st.sampled_from(["none", "full", "equal", "decorrelated"])),
        )
    cfg["policies"][0]["retry"] = retry
    if draw(st.booleans()):  # a heartbeat detector: false suspicions write attempts off
        h = draw(st.sampled_from([0.25, 0.5]))
        cfg["policies"][0]["detector"] = {"id": "timeout", "interval": h, "timeout": h * 1.5}
    return cfg


@given(cfg=retry_scenarios(), seed=st.integers(0, 2**16))
def test_at_least_once_never_loses_a_task(cfg: dict[str, Any], seed: int) -> None:
    """Each arrival ends once or is in flight; abandoned tasks were dead-lettered; delays
    lie in [0, cap]."""
    recorded: list[int] = []
    add = Recorder.add

    def once(rec: Recorder, task: Task) -> None:
        recorded.append(task.id)
        add(rec, task)

    spec = RunSpec.make(cfg, "p", (), seed, trace=True)
    with guarded_engine(), mock.patch.object(Recorder, "add", once):
        world, cols = simulate_world(spec)
    assert len(recorded) == len(set(recorded)), "a task was recorded twice"
    assert cols["id"].tolist() == list(range(world.arrived)), "each arrival appears once"
    log = world.kernel.log
    assert log is not None
    dead = {row[2] for row in log.rows if row[1] == "dead_letter"}
    abandoned = set(cols["id"][cols["state"] == ABANDONED].tolist())
    assert abandoned <= dead, f"abandoned without a dead letter: {sorted(abandoned - dead)}"
    retry = cfg["policies"][0]["retry"]
    cap = retry.get("cap", 0.0)
    for row in log.rows:
        if row[1] == "retry":
            delay = json.loads(row[7])["delay"]
            assert 0.0 <= delay <= cap + 1e-12, (delay, cap)

    result = simulate(RunSpec.make(cfg, "p", (), seed))
    assert result.status == "ok", result.error
    m = {(name, scope): v for name, scope, v in result.metrics}
    assert m[("lost", "all")] == 0
    ended = m[("completed", "all")] + m[("abandoned", "all")] + m[("rejected", "all")]
    assert m[("arrived", "all")] == ended + m[("in_flight", "all")]
    measured = cols["measured"]
    state = cols["state"]
    assert m[("completed", "all")] == int((measured & (state == DONE)).sum())
    assert m[("dead_lettered", "all")] == int((measured & (state == ABANDONED)).sum())
    assert m[("duplicates", "all")] >= 0 and np.isfinite(m[("duplicate_work", "all")])
    if retry["timeout"] is None:
        assert m[("attempt_failures", "reason=timeout")] == 0


@given(cfg=retry_scenarios(), seed=st.integers(0, 2**16))
def test_at_most_once_never_copies_a_task(cfg: dict[str, Any], seed: int) -> None:
    """No duplicates, no timeouts; each abandoned task was given up or dead-lettered."""
    retry = cfg["policies"][0]["retry"]
    retry["delivery"] = "at_most_once"
    retry["timeout"] = None
    spec = RunSpec.make(cfg, "p", (), seed, trace=True)
    with guarded_engine():
        world, cols = simulate_world(spec)
    assert cols["id"].tolist() == list(range(world.arrived))
    assert world.ledger.duplicates == 0
    log = world.kernel.log
    assert log is not None
    ended = {row[2] for row in log.rows if row[1] in ("give_up", "dead_letter")}
    abandoned = set(cols["id"][cols["state"] == ABANDONED].tolist())
    assert abandoned <= ended
    result = simulate(RunSpec.make(cfg, "p", (), seed))
    assert result.status == "ok", result.error
    m = {(name, scope): v for name, scope, v in result.metrics}
    assert m[("lost", "all")] == 0 and m[("duplicates", "all")] == 0
    gone = m[("given_up", "all")] + m[("dead_lettered", "all")]
    assert m[("abandoned", "all")] == gone
