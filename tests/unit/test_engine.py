"""The engine on tiny deterministic scenarios: exact traces of start and end times.

Every scenario uses renewal arrivals with a constant interarrival time and
constant work, so each start and end time is known in advance; the tests
assert on the whole trace, SimPy style. The first arrival comes one
interarrival after time 0.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from kossim.runspec import RunSpec
from kossim.sim import simulate, simulate_world
from kossim.sim.task import DONE, RUNNING, WAITING


def constant(value: float) -> dict[str, Any]:
    return {"dist": "constant", "value": value}


def config(
    *,
    interarrival: float = 1.0,
    work: float = 0.5,
    tasks: int | None = None,
    horizon: float | None = None,
    policy: dict[str, Any] | None = None,
    agents: list[dict[str, Any]] | None = None,
    types: list[dict[str, Any]] | None = None,
    **scenario: Any,
) -> dict[str, Any]:
    """A plain experiment: one agent, deterministic arrivals and work, one policy ``p``."""
    cfg: dict[str, Any] = {
        "name": "engine-trace",
        "scenario": {
            "agents": agents or [{"group": "w", "count": 1}],
            "workload": {
                "arrivals": {"process": "renewal", "interarrival": constant(interarrival)},
                "tasks": types or [{"type": "job", "work": constant(work)}],
            },
            **scenario,
        },
        "policies": [{"name": "p", **(policy or {"dispatch": "central"})}],
    }
    if horizon is not None:
        cfg["horizon"] = horizon
    else:
        cfg["tasks"] = tasks or 1
    return cfg


def run(cfg: dict[str, Any], seed: int = 0) -> dict[str, np.ndarray]:
    return simulate_world(RunSpec.make(cfg, "p", (), seed))[1]


def trace(cols: dict[str, np.ndarray]) -> list[tuple[float, float, float]]:
    """``(arrival, start, end)`` of every task in id order."""
    return [
        (float(a), float(s), float(e))
        for a, s, e in zip(cols["arrival"], cols["start"], cols["end"], strict=True)
    ]


def metrics(cfg: dict[str, Any], seed: int = 0) -> dict[tuple[str, str], float]:
    result = simulate(RunSpec.make(cfg, "p", (), seed))
    assert result.status == "ok", result.error
    return {(m, s): v for m, s, v in result.metrics}


# -- arrivals and service ------------------------------------------------------------


def test_deterministic_arrivals_and_work_give_exact_times() -> None:
    """D/D/1 below capacity: every task starts on arrival and ends 0.5 later."""
    cols = run(config(interarrival=1.0, work=0.5, tasks=4))
    assert trace(cols) == [(1.0, 1.0, 1.5), (2.0, 2.0, 2.5), (3.0, 3.0, 3.5), (4.0, 4.0, 4.5)]
    assert cols["id"].tolist() == [0, 1, 2, 3]
    assert (cols["state"] == DONE).all()
    assert cols["attempts"].tolist() == [1, 1, 1, 1]


def test_overloaded_agent_serves_in_arrival_order() -> None:
    """Work 1.5 every 1.0: FCFS backlog, task k runs in [1 + 1.5k, 2.5 + 1.5k]."""
    cols = run(config(interarrival=1.0, work=1.5, tasks=4))
    assert trace(cols) == [(1.0, 1.0, 2.5), (2.0, 2.5, 4.0), (3.0, 4.0, 5.5), (4.0, 5.5, 7.0)]


@pytest.mark.parametrize("dispatch", ["central", "push"])
def test_capacity_two_runs_two_tasks_at_once(dispatch: str) -> None:
    """Capacity 2, work 2.5 every 1.0: two overlap, the third waits for a slot."""
    cols = run(
        config(
            interarrival=1.0,
            work=2.5,
            tasks=4,
            agents=[{"group": "w", "capacity": 2}],
            policy={"dispatch": dispatch},
        )
    )
    assert trace(cols) == [(1.0, 1.0, 3.5), (2.0, 2.0, 4.5), (3.0, 3.5, 6.0), (4.0, 4.5, 7.0)]


def test_service_time_is_work_over_speed_times_proficiency() -> None:
    """Speed 2 and proficiency 0.5 cancel; speed 4 with proficiency 0.5 halves the time."""
    skilled = [{"type": "job", "work": constant(1.0), "skills": ["compute"]}]
    even = run(
        config(types=skilled, agents=[{"group": "w", "speed": 2, "skills": {"compute": 0.5}}])
    )
    fast = run(
        config(types=skilled, agents=[{"group": "w", "speed": 4, "skills": {"compute": 0.5}}])
    )
    assert trace(even) == [(1.0, 1.0, 2.0)]
    assert trace(fast) == [(1.0, 1.0, 1.5)]


# -- preemption ----------------------------------------------------------------------


def _first_seed_with_types(cfg: dict[str, Any], wanted: list[int]) -> dict[str, np.ndarray]:
    """Task types are drawn at random by share: find a seed that draws ``wanted`` in order."""
    for seed in range(64):
        cols = run(cfg, seed)
        if cols["tidx"].tolist() == wanted:
            return cols
    raise AssertionError(f"no seed in 0..63 draws task types {wanted}")  # p ~ 1e-8


@pytest.mark.parametrize("dispatch", ["central", "push"])
def test_preemptive_priority_displaces_and_resumes_remaining_work(dispatch: str) -> None:
    """A low task (work 3) starts at 1; a high one (work 1) arrives at 2 and displaces it.

    The high task runs [2, 3]; the low one resumes at 3 with its remaining 2
    units and ends at 5 (preemptive-resume: no work is lost), first start kept.
    """
    types = [
        {"type": "low", "work": constant(3.0), "priority": 1},
        {"type": "high", "work": constant(1.0), "priority": 0},
    ]
    cfg = config(
        types=types, tasks=2, policy={"dispatch": dispatch, "queue": "priority_preemptive"}
    )
    cols = _first_seed_with_types(cfg, [0, 1])
    assert trace(cols) == [(1.0, 1.0, 5.0), (2.0, 2.0, 3.0)]
    assert cols["attempts"].tolist() == [1, 1]


def test_nonpreemptive_priority_lets_the_running_task_finish() -> None:
    """Same arrivals under ``priority``: the low task keeps the agent until 4."""
    types = [
        {"type": "low", "work": constant(3.0), "priority": 1},
        {"type": "high", "work": constant(1.0), "priority": 0},
    ]
    cfg = config(types=types, tasks=2, policy={"dispatch": "central", "queue": "priority"})
    cols = _first_seed_with_types(cfg, [0, 1])
    assert trace(cols) == [(1.0, 1.0, 4.0), (2.0, 4.0, 5.0)]


def test_priority_orders_the_waiting_line() -> None:
    """A busy agent with a low and then a high task waiting serves the high one first."""
    types = [
        {"type": "low", "work": constant(3.0), "priority": 1},
        {"type": "high", "work": constant(1.0), "priority": 0},
    ]
    cfg = config(types=types, tasks=3, policy={"dispatch": "central", "queue": "priority"})
    cols = _first_seed_with_types(cfg, [0, 0, 1])
    # low0 [1, 4]; low1 arrives 2, high arrives 3: high runs [4, 5], low1 [5, 8].
    assert trace(cols) == [(1.0, 1.0, 4.0), (2.0, 5.0, 8.0), (3.0, 4.0, 5.0)]


def test_srpt_preempts_for_shorter_remaining_work() -> None:
    """SRPT: a task with work 1 arriving at 2 beats one with 2.5 units still to do.

    The long task (3.5) runs [1, 2], waits while the short one runs [2, 3],
    then finishes its 2.5 remaining units at 5.5.
    """
    types = [
        {"type": "long", "work": constant(3.5)},
        {"type": "short", "work": constant(1.0)},
    ]
    cfg = config(types=types, tasks=2, policy={"dispatch": "push", "queue": "srpt"})
    cols = _first_seed_with_types(cfg, [0, 1])
    assert trace(cols) == [(1.0, 1.0, 5.5), (2.0, 2.0, 3.0)]


# -- failures ------------------------------------------------------------------------

FAILING_A = {
    "up": constant(2.0),
    "down": constant(0.5),
    "detect": constant(0.25),
    "only": ["a"],
}


@pytest.mark.parametrize(
    ("mode", "end", "agent", "attempts"),
    [
        ("resume", 3.0, 0, 1),  # 1 unit done by 2.0; the other 0.5 after repair at 2.5
        ("restart", 4.0, 0, 2),  # all 1.5 units again from the repair at 2.5
        ("requeue", 3.75, 1, 2),  # detected at 2.25, sent to agent b, 1.5 units there
    ],
)
def test_failure_semantics_give_exact_end_time(
    mode: str, end: float, agent: int, attempts: int
) -> None:
    """Task (work 1.5) starts at 1 on agent a; a fails at 2 (down until 2.5).

    Round robin sends the task to agent a (index 0); only group ``a`` fails;
    the coordinator learns of the failure 0.25 after it.
    """
    cfg = config(
        work=1.5,
        agents=[{"group": "a"}, {"group": "b"}],
        policy={"dispatch": "central", "routing": "round_robin"},
        failures={"agents": {**FAILING_A, "on_failure": mode}},
    )
    cols = run(cfg)
    assert trace(cols) == [(1.0, 1.0, end)]
    assert cols["agent"].tolist() == [agent]
    assert cols["attempts"].tolist() == [attempts]


@pytest.mark.parametrize("queue", ["fcfs", "priority", "srpt", "edf"])
def test_requeue_sends_the_local_queue_back_and_redispatches_on_repair(queue: str) -> None:
    """Push, one agent, work 1.75 every 1.0; it fails at 4.0 (down until 4.5).

    Task 1 is running and task 2 queued when it fails: both lose their place
    and return to the coordinator, which holds them (no agent up) and routes
    them again on repair, in the discipline's order (equal keys: arrival).
    Task 1 restarts from scratch [4.5, 6.25], task 2 runs [6.25, 8.0].
    """
    cfg = config(
        work=1.75,
        tasks=3,
        policy={"dispatch": "push", "queue": queue},
        failures={"agents": {"up": constant(4.0), "down": constant(0.5), "on_failure": "requeue"}},
    )
    cols = run(cfg)
    assert trace(cols) == [(1.0, 1.0, 2.75), (2.0, 2.75, 6.25), (3.0, 6.25, 8.0)]
    assert cols["attempts"].tolist() == [1, 2, 1]


def test_failure_of_idle_agent_delays_the_next_arrival() -> None:
    """The up/down clock runs while idle: a task arriving during an outage waits for repair.

    The agent is down in [2.0, 2.5], [4.5, 5.0], [7.0, 7.5] whatever it does.
    Arrivals every 3.6: the first (3.6) finds it up; the second (7.2) waits for 7.5.
    """
    cfg = config(
        interarrival=3.6,
        work=0.25,
        tasks=2,
        failures={"agents": {"up": constant(2.0), "down": constant(0.5), "on_failure": "resume"}},
    )
    assert trace(run(cfg)) == [(3.6, 3.6, 3.85), (7.2, 7.5, 7.75)]


def test_requeue_abandons_after_max_attempts() -> None:
    """max_attempts 1: the first failure under requeue abandons the task."""
    cfg = config(
        work=1.5,
        failures={
            "agents": {
                "up": constant(2.0),
                "down": constant(0.5),
                "on_failure": "requeue",
                "max_attempts": 1,
            }
        },
    )
    m = metrics(cfg)
    assert (m[("completed", "all")], m[("abandoned", "all")], m[("lost", "all")]) == (0, 1, 0)
    cols = run(cfg)
    assert cols["end"].tolist() == [2.0]


# -- network -------------------------------------------------------------------------


def test_constant_latency_delays_dispatch_and_completion_reports() -> None:
    """Latency 0.25 each way under central dispatch with one agent and work 1.

    Task 0 arrives 1, reaches the agent at 1.25, ends 2.25; the coordinator
    hears of it at 2.5 and only then sends task 1 (waiting since 2), which
    starts at 2.75. Task 2 is sent at 4.0 and starts at 4.25.
    """
    cfg = config(work=1.0, tasks=3, network={"latency": constant(0.25)})
    assert trace(run(cfg)) == [(1.0, 1.25, 2.25), (2.0, 2.75, 3.75), (3.0, 4.25, 5.25)]
    assert metrics(cfg)[("messages", "all")] == 6.0  # one dispatch, one report per task


def test_push_latency_only_delays_delivery() -> None:
    """Under push the task leaves at once: it starts exactly one latency after arrival."""
    cfg = config(
        work=0.5, tasks=3, policy={"dispatch": "push"}, network={"latency": constant(0.25)}
    )
    assert trace(run(cfg)) == [(1.0, 1.25, 1.75), (2.0, 2.25, 2.75), (3.0, 3.25, 3.75)]


def test_tasks_in_transit_are_in_flight_not_lost() -> None:
    """A horizon that falls while a task travels leaves it in flight, not lost."""
    cfg = config(work=0.5, horizon=1.1, network={"latency": constant(0.25)})
    m = metrics(cfg)
    assert (m[("arrived", "all")], m[("in_flight", "all")], m[("lost", "all")]) == (1, 1, 0)


# -- run length and measurement -------------------------------------------------------


def test_horizon_stops_arrivals_and_leaves_running_tasks_in_flight() -> None:
    """Horizon 4.5: arrivals at 1..4; the task started at 4 is still running."""
    cols = run(config(work=0.75, horizon=4.5))
    assert cols["arrival"].tolist() == [1.0, 2.0, 3.0, 4.0]
    assert cols["state"].tolist() == [DONE, DONE, DONE, RUNNING]
    assert cols["end"].tolist() == [1.75, 2.75, 3.75, -1.0]


def test_warmup_time_excludes_early_arrivals() -> None:
    """Warm-up 2.5: tasks arriving at 1 and 2 are unmeasured; 3..6 are measured."""
    cfg = config(work=0.25, horizon=6.5)
    cfg["warmup"] = 2.5
    cols = run(cfg)
    assert cols["measured"].tolist() == [False, False, True, True, True, True]
    m = metrics(cfg)
    assert (m[("arrived", "all")], m[("completed", "all")]) == (4, 4)
    assert m[("sojourn_mean", "all")] == 0.25
    assert m[("throughput", "all")] == pytest.approx(4 / 4.0)  # window [2.5, 6.5]
    assert m[("utilization", "all")] == pytest.approx(1.0 / 4.0)


def test_warmup_tasks_excludes_the_first_arrivals() -> None:
    """warmup_tasks 2, tasks 3: five arrivals, the last three measured, all drained."""
    cfg = config(work=0.5, tasks=3)
    cfg["warmup_tasks"] = 2
    cols = run(cfg)
    assert cols["measured"].tolist() == [False, False, True, True, True]
    assert (cols["state"] == DONE).all()


def test_tasks_mode_drains_every_arrival() -> None:
    """``tasks: 200`` under Poisson load: arrivals stop at 200 and every one completes."""
    cfg = config(tasks=200, agents=[{"group": "w", "count": 2}])
    cfg["scenario"]["workload"] = {
        "arrivals": {"process": "poisson", "rate": 1.8},
        "tasks": [{"type": "job", "work": {"dist": "exponential", "mean": 1.0}}],
    }
    m = metrics(cfg, seed=3)
    assert m[("arrived", "all")] == m[("completed", "all")] == 200
    assert (m[("in_flight", "all")], m[("lost", "all")]) == (0, 0)


@pytest.mark.parametrize(("drain_limit", "end"), [(None, 10.0), (4.0, 4.0)])
def test_tasks_mode_that_cannot_drain_stops_at_the_drain_limit(
    drain_limit: float | None, end: float
) -> None:
    """Restart with work 3 and up-times of 2: the task can never finish.

    The run stops at drain_limit (default 10) x tasks x mean interarrival
    (1 x 1.0) and reports the task in flight, not lost.
    """
    cfg = config(
        work=3.0,
        failures={"agents": {"up": constant(2.0), "down": constant(0.5), "on_failure": "restart"}},
    )
    if drain_limit is not None:
        cfg["drain_limit"] = drain_limit
    world, cols = simulate_world(RunSpec.make(cfg, "p", (), 0))
    assert world.recorder.end_time == end
    assert cols["end"].tolist() == [-1.0]
    m = metrics(cfg)
    assert (m[("completed", "all")], m[("in_flight", "all")], m[("lost", "all")]) == (0, 1, 0)


def test_waiting_task_at_horizon_is_in_flight() -> None:
    """Central dispatch with a busy agent: the waiting task is reported, state ``waiting``."""
    cols = run(config(work=3.0, horizon=2.5))
    assert cols["state"].tolist() == [RUNNING, WAITING]
    assert cols["start"].tolist() == [1.0, -1.0]


def test_same_seed_same_metrics() -> None:
    """Two runs of one spec give identical metric rows, value for value."""
    cfg = config(
        tasks=300,
        agents=[{"group": "w", "count": 3}],
        policy={"dispatch": "push", "routing": "jsq"},
    )
    cfg["scenario"]["workload"]["arrivals"] = {"process": "poisson", "rate": 2.5}
    a, b, c = (simulate(RunSpec.make(cfg, "p", (), seed)).metrics for seed in (7, 7, 8))
    assert [(m, s) for m, s, _ in a] == [(m, s) for m, s, _ in b]
    values = [np.array([v for *_, v in rows]) for rows in (a, b, c)]
    assert np.array_equal(values[0], values[1], equal_nan=True)  # NaN: no deadlines here
    assert not np.array_equal(values[0], values[2], equal_nan=True)


def test_central_never_sends_a_task_to_an_agent_without_its_skill() -> None:
    """Only ``skilled`` can do the job; the repair of ``plain`` must not make it a candidate.

    Both agents fail at 3.0 and return at 3.5. The task arriving at 3.0 waits
    for the skilled agent; every task runs there (agent index 1).
    """
    cfg = config(
        tasks=5,
        agents=[{"group": "plain"}, {"group": "skilled", "skills": {"a": 1.0}}],
        types=[{"type": "job", "work": constant(0.5), "skills": ["a"]}],
        failures={"agents": {"up": constant(3.0), "down": constant(0.5), "on_failure": "resume"}},
    )
    cols = run(cfg)
    assert trace(cols) == [
        (1.0, 1.0, 1.5),
        (2.0, 2.0, 2.5),
        (3.0, 3.5, 4.0),
        (4.0, 4.0, 4.5),
        (5.0, 5.0, 5.5),
    ]
    assert cols["agent"].tolist() == [1, 1, 1, 1, 1]


def test_restart_abandons_a_task_after_max_attempts() -> None:
    """Work of 3.0 never fits in up-times of 1.0: each repair restarts it, a new attempt.

    The up clock starts at 0: failures at 1.0, 2.2, 3.4, repairs at 1.2, 2.4, 3.6.
    The task arrives at 1.0 and starts at once (attempt 1, its arrival event comes
    before the failure at the same instant), restarts at 1.2 (2) and 2.4 (3); the
    repair at 3.6 finds its three attempts used up and abandons it.
    """
    cfg = config(
        work=3.0,
        tasks=1,
        failures={
            "agents": {
                "up": constant(1.0),
                "down": constant(0.2),
                "on_failure": "restart",
                "max_attempts": 3,
            }
        },
    )
    cols = run(cfg)
    assert cols["state"].tolist() == [7]  # abandoned
    assert cols["attempts"].tolist() == [3]
    assert cols["start"].tolist() == [1.0]
    assert cols["end"].tolist() == [pytest.approx(3.6)]
