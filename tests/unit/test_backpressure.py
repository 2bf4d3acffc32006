"""Backpressure: finite buffers reject, impatient tasks renege, each logged with its reason."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from kossim.config.experiment import load_experiment
from kossim.config.models import Experiment
from kossim.lab import run_experiment
from kossim.runspec import RunSpec
from kossim.sim import simulate, simulate_world
from kossim.sim.task import RENEGED, STATE_NAMES

ROOT = Path(__file__).resolve().parents[2]


def _config(
    agent: dict[str, Any] | None = None,
    task: dict[str, Any] | None = None,
    policy: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One single-slot agent; a task every 1.0 needing 2.4 of work; 8 arrivals then drain."""
    return {
        "name": "bp",
        "seeds": 1,
        "tasks": 8,
        "scenario": {
            "agents": [{"group": "w", "count": 1, "capacity": 1, **(agent or {})}],
            "workload": {
                "arrivals": {
                    "process": "renewal",
                    "interarrival": {"dist": "constant", "value": 1.0},
                },
                "tasks": [
                    {"type": "job", "work": {"dist": "constant", "value": 2.4}, **(task or {})}
                ],
            },
        },
        "policies": [{"name": "p", "dispatch": "push", "routing": "jsq", **(policy or {})}],
    }


def _run(cfg: dict[str, Any]) -> tuple[list[str], dict[str, float], list[tuple[str, str]]]:
    spec = RunSpec.make(cfg, "p", (), 0, trace=True)
    _, cols = simulate_world(spec)
    states = [STATE_NAMES[s] for s in cols["state"]]
    result = simulate(spec)
    assert result.status == "ok", result.error
    metrics = {name: v for name, scope, v in result.metrics if scope == "all"}
    assert result.events is not None
    log = [
        (k, r)
        for k, r in zip(result.events["kind"], result.events["reason"], strict=True)
        if k in ("refuse", "reject", "renege", "withdraw")
    ]
    return states, metrics, log


def test_an_agent_at_its_limit_rejects_each_arrival_that_finds_it_full() -> None:
    """Arrivals at 1, 2, 3, ...; service 2.4; the agent holds 2: an arrival that finds a task
    running and one queued is rejected (those at 3, 5, 7 and 8)."""
    states, metrics, log = _run(_config(agent={"queue_limit": 2}))
    c, r = "completed", "rejected"
    assert states == [c, c, r, c, r, c, r, r]
    assert metrics["rejected"] == 4 and metrics["rejection_rate"] == 0.5
    assert metrics["completed"] + metrics["rejected"] + metrics["in_flight"] == 8
    assert metrics["lost"] == 0
    refusals = [r for k, r in log if k == "refuse"]
    assert refusals[0] == "task 2 rejected: every agent up is full (1 at their limit)"
    assert [k for k, _ in log].count("reject") == 4


def test_the_coordinators_finite_queue_rejects_what_would_wait_beyond_it() -> None:
    """Central dispatch, one slot, no waiting room (``queue_limit: 0``): Erlang's loss
    system, where only an arrival that finds the slot free is served."""
    cfg = _config(
        policy={"dispatch": "central", "coordinator": {"id": "queueing", "queue_limit": 0}}
    )
    states, metrics, log = _run(cfg)
    # Free at 1 (busy to 3.4), 4 (to 6.4), 7 (to 9.4): the others find it busy.
    assert [i for i, s in enumerate(states) if s == "completed"] == [0, 3, 6]
    assert metrics["rejected"] == 5
    assert log[0] == ("refuse", "task 1 rejected: waiting queue full (0 of limit 0)")


def test_a_task_reneges_when_its_patience_runs_out_before_it_starts() -> None:
    """Patience 1.0 (constant) behind a 2.4 service: each task that must wait more than 1
    leaves unserved, counted in ``abandoned`` and ``reneged``, and never starts."""
    cfg = _config(task={"patience": {"dist": "constant", "value": 1.0}})
    spec = RunSpec.make(cfg, "p", (), 0)
    _, cols = simulate_world(spec)
    reneged = cols["state"] == RENEGED
    assert (cols["start"][reneged] == -1).all()
    assert (cols["end"][reneged] - cols["arrival"][reneged] == 1.0).all()
    states, metrics, log = _run(cfg)
    # Task 0 runs 1 to 3.4; task 1 (arrives 2) gives up at 3; task 2 (arrives 3) starts at
    # 3.4, within its patience, and runs to 5.8; task 3 gives up at 5; task 4 runs 5.8 to
    # 8.2, so tasks 5 and 6 give up at 7 and 8, and task 7 (arrives 8) starts at 8.2.
    c, r = "completed", "reneged"
    assert states == [c, r, c, r, c, r, r, c]
    assert metrics["reneged"] == reneged.sum() == metrics["abandoned"]
    assert metrics["completed"] + metrics["abandoned"] + metrics["in_flight"] == 8
    assert ("renege", "task 1 reneged: not started 1 after arrival, its patience (job)") in log


def test_a_pull_queue_lets_a_reneging_task_go_at_once() -> None:
    """Central dispatch: the reneging task leaves the coordinator's queue when its patience
    runs out (``withdraw``), so the next task takes the slot when it frees."""
    cfg = _config(
        task={"patience": {"dist": "constant", "value": 1.0}}, policy={"dispatch": "central"}
    )
    states, _, log = _run(cfg)
    c, r = "completed", "reneged"
    assert states == [c, r, c, r, c, r, r, c]
    assert ("withdraw", "task 1 leaves the waiting queue: patience") in log


def test_a_full_delegating_agent_with_no_lighter_peer_rejects() -> None:
    """Contract net (which awards on bids, blind to limits) over two delegating agents that
    hold one task each, a task every 0.5 needing 1.5: an award that reaches a full agent
    whose peer is full too is refused there, not kept beyond the limit."""
    cfg = _config(
        agent={"queue_limit": 1, "count": 2},
        policy={
            "coordinator": {"id": "contract_net", "window": 1.0},
            "agent": {"id": "delegating", "max_hops": 1},
        },
    )
    cfg["scenario"]["workload"]["tasks"][0]["work"] = {"dist": "constant", "value": 1.5}
    cfg["scenario"]["workload"]["arrivals"]["interarrival"]["value"] = 0.5
    states, metrics, log = _run(cfg)
    c, r = "completed", "rejected"
    assert states == [c, c, r, c, c, r, c, c]
    assert log[0] == ("refuse", "task 2 refused by w-1: holds 1 of limit 1")
    assert metrics["rejected"] == 2 and metrics["lost"] == 0


def test_limits_are_validated_where_they_are_written() -> None:
    cfg = _config(agent={"queue_limit": 1, "capacity": 2})
    with pytest.raises(ValueError, match="at least capacity"):
        Experiment.model_validate(cfg)
    bad = _config(policy={"coordinator": {"id": "queueing", "queue_limit": -1}})
    with pytest.raises(ValueError, match="queue_limit"):
        Experiment.model_validate(bad)


def test_without_limits_or_patience_nothing_is_swapped_in() -> None:
    """The default path pays nothing: no bounded handler, no patience wrapper."""
    world, _ = simulate_world(RunSpec.make(_config(), "p", (), 0))
    assert world._arrive == world.coordinator_actor.behaviour.on_arrival
    assert "route" not in vars(world.coordinator)
    assert all("on_task" not in vars(a.behaviour) for a in world.agents)
    bounded, _ = simulate_world(RunSpec.make(_config(agent={"queue_limit": 2}), "p", (), 0))
    assert "route" in vars(bounded.coordinator)
    assert all("on_task" in vars(a.behaviour) for a in bounded.agents)


def test_the_readme_example_runs(tmp_path: Path) -> None:
    """The README's backpressure experiment loads and runs, rejecting and reneging."""
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```yaml\n(name: backpressure-example\n.*?)```", text, re.S)
    assert block is not None
    path = tmp_path / "bp.yaml"
    path.write_text(block.group(1))
    loaded = load_experiment(path)
    outcome = run_experiment(loaded, tmp_path / "out", executor="serial", progress=False)
    assert outcome.n_failed == 0
    rows = []
    for spec in outcome.plan.specs:
        rows.extend((spec.policy, *r) for r in simulate(spec).metrics)
    got = {(p, m): v for p, m, s, v in rows if s == "all"}
    assert got[("unbounded", "rejected")] == 0 and got[("bounded", "rejected")] > 0
    assert got[("unbounded", "reneged")] > 0
