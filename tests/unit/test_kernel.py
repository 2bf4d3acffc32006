"""The kernel: actors, messages through the network, routing decisions checked, news ordered."""

from __future__ import annotations

import pytest

from kossim.runspec import RunSpec
from kossim.sim import simulate, simulate_world
from tests.plugins import Counting
from tests.unit.test_engine import config, constant, metrics


def test_router_is_consulted_even_with_one_candidate() -> None:
    """Every dispatch is the router's decision, also when only one agent is free."""
    Counting.calls.clear()
    cfg = config(tasks=5, policy={"dispatch": "central", "routing": "tests.plugins:Counting"})
    run = simulate(RunSpec.make(cfg, "p", (), 0))
    assert run.status == "ok", run.error
    assert Counting.calls == [1, 1, 1, 1, 1]


@pytest.mark.parametrize("dispatch", ["central", "push"])
def test_a_router_choosing_outside_its_candidates_fails_the_run(dispatch: str) -> None:
    """The decision is checked against what was offered; the run fails naming the component."""
    cfg = config(
        tasks=10,
        agents=[{"group": "w", "count": 3}],
        policy={"dispatch": dispatch, "routing": {"id": "tests.plugins:Stray", "after": 3}},
    )
    result = simulate(RunSpec.make(cfg, "p", (), 0))
    assert result.status == "failed"
    assert result.error is not None
    assert "routing component 'stray' chose AgentView(impostor" in result.error
    assert "not among the" in result.error


def test_messages_are_counted_per_kind() -> None:
    """Dispatches and completion reports each cross the network once per task."""
    m = metrics(config(tasks=4, network={"latency": constant(0.1)}))
    assert m[("messages", "all")] == 8
    assert m[("messages", "kind=task")] == 4
    assert m[("messages", "kind=done")] == 4


def test_stale_repair_report_does_not_hide_a_later_failure() -> None:
    """A repair report that arrives after the news of the next failure is ignored.

    The agent is up 0.5, down 0.5 (failures at 0.5, 1.5, 2.5, ..., each known
    at once to the oracle detector); its repair reports take 0.7, so each one
    arrives after the next failure was reported. The coordinator never sees
    the agent up, and the task arriving at 1.6 is never sent.
    """
    cfg = config(
        interarrival=1.6,
        horizon=5.0,
        network={"latency": constant(0.7)},
        failures={"agents": {"up": constant(0.5), "down": constant(0.5)}},
    )
    world, cols = simulate_world(RunSpec.make(cfg, "p", (), 0))
    assert cols["arrival"].tolist() == pytest.approx([1.6, 3.2, 4.8])
    assert (cols["start"] == -1).all()
    assert world.kernel.counts() == {"repaired": 4}  # repairs at 1, 2, 3, 4 (5 is the end)


def test_messages_are_counted_from_the_end_of_the_warm_up() -> None:
    """Warm-up 2.5, arrivals at 1, 2, 3, 4, latency 0.1, work 0.5: counted are the report
    of task 1 (sent at 2.6) and the dispatch and report of tasks 2 and 3: 5 messages."""
    cfg = config(horizon=5.0, network={"latency": constant(0.1)})
    cfg["warmup"] = 2.5
    m = metrics(cfg)
    assert m[("messages", "all")] == 5
    assert (m[("messages", "kind=task")], m[("messages", "kind=done")]) == (2, 3)


def test_utilization_counts_time_up_and_busy_share_all_time() -> None:
    """One agent, busy from the first arrival at 0.1 whenever up (arrivals every 0.1, work
    1): up 10, down 5, up 10, down 5 over a horizon of 30. Busy 19.9 of the 20 up; of 30."""
    cfg = config(
        interarrival=0.1,
        work=1.0,
        horizon=30.0,
        failures={"agents": {"up": constant(10.0), "down": constant(5.0)}},
    )
    m = metrics(cfg)
    assert m[("utilization", "all")] == pytest.approx(19.9 / 20)
    assert m[("utilization", "agent=w-0")] == pytest.approx(19.9 / 20)
    assert m[("busy_share", "all")] == pytest.approx(19.9 / 30)


def test_a_protocol_looping_without_time_passing_fails_its_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Zero-delay timers at one instant past the limit: the run fails with the reason, it
    does not hang."""
    from kossim.sim.kernel import Kernel

    monkeypatch.setattr(Kernel, "STALL_LIMIT", 1000)
    cfg = config(tasks=3, policy={"dispatch": "central", "detector": "tests.plugins:Spinner"})
    result = simulate(RunSpec.make(cfg, "p", (), 0))
    assert result.status == "failed"
    assert result.error is not None
    assert "no progress in simulated time: 1,001 zero-delay timers and messages at time 0" in (
        result.error
    )
    assert "'spin' of 'detector'" in result.error


def test_a_queue_of_lost_copies_is_skipped_in_one_loop() -> None:
    """5,000 cancelled copies queued behind a running task (their siblings finished
    elsewhere) are discarded one after the other when it completes, each reported once,
    without nesting a call per copy."""
    import math

    from kossim.config.models import Experiment
    from kossim.sim import World
    from kossim.sim.task import Task

    cfg = config(tasks=1, policy={"dispatch": "push"})
    exp = Experiment.model_validate(cfg)
    world = World(exp, exp.policy("p"), seed=0)
    tasks = [Task(i, "job", 0, 1.0, 0, math.inf, (), 0.0, True) for i in range(5001)]
    for task in tasks:
        world.coordinator.on_arrival(None, task)
    for task in tasks[1:]:
        task.cancelled = True
    world.env.run(until=1.5)
    worker = world.agents[0].behaviour
    assert not worker.local and not world.agents[0].running
    assert world.kernel.counts() == {"task": 5001, "done": 5001}
    assert world.coordinator.views[0].queue_length == 0


def test_an_agent_cancels_a_task_on_its_own_slot() -> None:
    """``ctx.cancel``: the task leaves its slot at once and ends abandoned; the slot's busy
    time stops with it."""
    import math

    from kossim.config.models import Experiment
    from kossim.sim import World
    from kossim.sim.task import ABANDONED, Task

    exp = Experiment.model_validate(config(tasks=1, policy={"dispatch": "push"}))
    world = World(exp, exp.policy("p"), seed=0)
    task = Task(0, "job", 0, 4.0, 0, math.inf, (), 0.0, True)
    world.in_system += 1
    world.coordinator.on_arrival(None, task)
    world.env.run(until=1.0)
    agent = world.agents[0]
    assert agent.running == [task]
    world.agent_actors[0].ctx.cancel(task)
    assert not agent.running
    assert task.state == ABANDONED and task.end == 1.0
    assert task.remaining == pytest.approx(3.0)
    agent.account(1.0)
    assert agent.area == pytest.approx(1.0)


def test_light_events_keep_simpy_order() -> None:
    """``call_after`` rides SimPy's own heap, counter and priority: Calls and Timeouts due at
    the same moment run in the order they were scheduled, interleaved, and at their times
    (it reads ``Environment._queue`` and ``_eid``, which is why simpy is pinned below 5)."""
    import simpy

    from kossim.sim.kernel import call_after

    env = simpy.Environment()
    seen: list[tuple[float, str]] = []
    for i, delay in enumerate([1.0, 1.0, 0.5, 1.0, 0.5, 2.0]):
        name = f"e{i}"
        if i % 2:
            call_after(env, delay, (lambda ev: seen.append((env.now, ev._value)),), name)
        else:
            env.timeout(delay, name).callbacks.append(lambda ev: seen.append((env.now, ev.value)))
    env.run()
    assert seen == [
        (0.5, "e2"),
        (0.5, "e4"),
        (1.0, "e0"),
        (1.0, "e1"),
        (1.0, "e3"),
        (2.0, "e5"),
    ]
