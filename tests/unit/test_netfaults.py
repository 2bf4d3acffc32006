"""Network faults: message loss per link, jitter, partitions; dropped tasks stay recoverable."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import simpy

from kossim.config.models import Network
from kossim.runspec import RunSpec
from kossim.sim import simulate_world
from kossim.sim.eventlog import EventLog
from kossim.sim.faults import FaultyKernel
from kossim.sim.kernel import Actor
from kossim.sim.network import Net
from kossim.sim.task import DONE, DROPPED, Task
from tests.unit.test_engine import config, constant, metrics


class _Inbox:
    def __init__(self, env: simpy.Environment) -> None:
        self.env = env
        self.got: list[tuple[float, Any]] = []

    def on_note(self, sender: Any, payload: Any) -> None:
        self.got.append((self.env.now, payload))


def _kernel(spec: dict[str, Any], nodes: list[str], trace: bool = False) -> Any:
    env = simpy.Environment()
    net_spec = Network.model_validate(spec)
    kernel = FaultyKernel(env, Net(net_spec, nodes, 7), EventLog() if trace else None, net_spec, 7)
    actors = {}
    for name, node in (("c", "coordinator"), *((n, n) for n in nodes), ("twin", nodes[0])):
        actor = kernel.add(Actor("x", name, node))
        actor.behaviour = _Inbox(env)
        actors[name] = actor
    return env, kernel, actors


def test_messages_on_one_node_are_never_lost() -> None:
    """Loss 1 loses every network message, none between actors on one node."""
    env, kernel, a = _kernel({"loss": 1.0}, ["n1", "n2"])
    kernel.send(a["n1"], a["twin"], "note", 1)
    kernel.send(a["n1"], a["n2"], "note", 2)
    kernel.send(a["c"], a["n1"], "note", 3)
    env.run()
    assert a["twin"].behaviour.got == [(0.0, 1)]
    assert a["n2"].behaviour.got == [] and a["n1"].behaviour.got == []
    assert kernel.drop_counts() == {"note": 2} and kernel.counts() == {"note": 2}


def test_loss_is_drawn_per_link_of_the_path() -> None:
    """On a star, coordinator -> node crosses one link (loss p), node -> node two
    (1 - (1 - p)^2); a link's own ``loss`` overrides the default."""
    n = 20_000
    env, kernel, a = _kernel(
        {"loss": 0.2, "links": [{"a": "coordinator", "b": "n2", "latency": constant(0.0)}]},
        ["n1", "n2"],
    )
    kernel.link_loss[("coordinator", "n2")] = kernel.link_loss[("n2", "coordinator")] = 0.5
    for _ in range(n):
        kernel.send(a["c"], a["n1"], "note")
        kernel.send(a["n1"], a["n2"], "note")
    env.run()
    one = len(a["n1"].behaviour.got) / n
    two = len(a["n2"].behaviour.got) / n
    sd = (0.25 / n) ** 0.5
    assert abs(one - 0.8) < 5 * sd
    assert abs(two - 0.8 * 0.5) < 5 * sd


def test_a_cut_drops_at_send_and_on_the_wire() -> None:
    """A message sent across a cut is dropped at once; one on the wire when the cut starts
    is dropped when it would arrive; after healing messages pass again."""
    env, kernel, a = _kernel({"latency": constant(1.0)}, ["n1", "n2"], trace=True)
    kernel.send(a["c"], a["n1"], "note", "early")  # due at 1.0
    env.run(until=0.5)
    kernel.cuts.add("p", [{"n1"}])
    kernel.send(a["c"], a["n1"], "note", "during")
    kernel.send(a["c"], a["n2"], "note", "elsewhere")
    env.run(until=2.0)
    kernel.cuts.remove("p")
    kernel.send(a["c"], a["n1"], "note", "after")
    env.run()
    assert a["n1"].behaviour.got == [(3.0, "after")]
    assert a["n2"].behaviour.got == [(1.5, "elsewhere")]
    reasons = [r[6] for r in kernel.log.rows if r[1] == "drop"]
    assert reasons == [
        "note from c to n1 dropped: partition: the path is cut",  # "during", at 0.5
        "note from c to n1 dropped: partition: cut while on the wire",  # "early", at 1.0
    ]


def test_node_to_node_messages_cross_the_coordinators_side() -> None:
    """On a star, two nodes cut off together still talk through the coordinator: cut."""
    env, kernel, a = _kernel({}, ["n1", "n2"])
    kernel.cuts.add("p", [{"n1", "n2"}])
    kernel.send(a["n1"], a["n2"], "note")
    env.run()
    assert a["n2"].behaviour.got == [] and kernel.drop_counts() == {"note": 1}


def test_jitter_is_added_to_each_message() -> None:
    """Latency 1 plus an exponential jitter of mean 0.5: delays above 1, mean 1.5."""
    env, kernel, a = _kernel(
        {"latency": constant(1.0), "jitter": {"dist": "exponential", "mean": 0.5}}, ["n1"]
    )
    for _ in range(4000):
        kernel.send(a["c"], a["n1"], "note")
    env.run()
    delays = np.array([t for t, _ in a["n1"].behaviour.got])
    assert delays.min() > 1.0
    assert abs(delays.mean() - 1.5) < 5 * 0.5 / 4000**0.5


def test_jitter_makes_an_instant_network_timed() -> None:
    _, kernel, _ = _kernel({"jitter": {"dist": "constant", "value": 0.1}}, ["n1"])
    assert not kernel.instant


def test_a_task_lost_with_a_message_is_dropped_not_lost() -> None:
    """Loss on every link, no recovery: tasks sent to agents are ``dropped``; conservation
    counts them (arrived = completed + dropped + in flight, lost 0)."""
    cfg = config(
        horizon=200.0,
        work=0.3,
        agents=[{"group": "w", "count": 2}],
        network={"latency": constant(0.01), "loss": 0.1},
        policy={"dispatch": "push", "routing": "round_robin"},
    )
    m = metrics(cfg)
    assert m[("dropped", "all")] > 0
    assert m[("lost", "all")] == 0
    ended = m[("completed", "all")] + m[("dropped", "all")] + m[("in_flight", "all")]
    assert ended == m[("arrived", "all")]
    assert m[("messages_dropped", "kind=task")] >= m[("dropped", "all")]
    assert m[("messages_dropped", "all")] == sum(
        v for (k, s), v in m.items() if k == "messages_dropped" and s != "all"
    )


def _partitioned(at: float = 20.0) -> dict[str, Any]:
    """Two agents with heartbeats, tasks re-sent when suspected (requeue); ``w-1`` cut off
    from ``at`` to 40. Seed 3: task 9 arrives at 20 and is routed to ``w-1``."""
    cfg = config(
        horizon=80.0,
        interarrival=2.0,
        work=3.0,
        agents=[{"group": "w", "count": 2}],
        network={"latency": constant(0.05)},
        failures={"agents": {"up": constant(1e9), "down": constant(1.0), "on_failure": "requeue"}},
        policy={
            "dispatch": "central",
            "detector": {"id": "timeout", "interval": 0.5, "timeout": 1.3},
        },
    )
    cfg["scenario"]["timeline"] = [
        {"at": at, "kind": "partition", "groups": [["w-1"]], "until": 40, "name": "cut"}
    ]
    return cfg


def test_a_partitioned_live_agent_is_suspected_never_counted_a_crash() -> None:
    m = metrics(_partitioned(), seed=3)
    assert m[("partition_suspicions", "all")] == m[("false_suspicions", "all")] >= 1
    assert np.isnan(m[("detection_latency_mean", "all")])  # no crash was detected
    assert m[("lost", "all")] == 0 and m[("dropped", "all")] == 0


def _once(cfg: dict[str, Any]) -> tuple[Any, list[tuple[Any, ...]]]:
    world, cols = simulate_world(RunSpec.make(cfg, "p", (), 3, trace=True))
    done = cols["id"][cols["state"] == DONE]
    assert len(done) == len(set(done.tolist()))  # no task finishes twice
    assert len(cols["id"]) == len(set(cols["id"].tolist())) == world.arrived
    assert not world.kernel.dropped
    return world, world.kernel.log.rows


def test_a_task_dropped_at_the_cut_is_re_sent_itself() -> None:
    """Cut at 20, as task 9 is sent to ``w-1``: it is dropped; the suspicion re-sends the
    task itself (``recover``), not a copy, and it completes on ``w-0``."""
    world, log = _once(_partitioned(20.0))
    assert world.ledger.duplicates == 0
    life = [(r[1], r[3]) for r in log if r[2] == 9 and not r[1].startswith("send:")]
    assert life == [
        ("arrive", "world"),
        ("route", "coordinator"),
        ("drop", "network"),
        ("route", "coordinator"),
        ("start", "w-0"),
        ("complete", "w-0"),
    ]


def test_after_healing_the_first_completion_wins() -> None:
    """Cut at 20.5, while task 9 runs on ``w-1``: the suspicion re-sends a copy (the task
    lives); both finish, the first completion is the task's, its report from ``w-1`` is
    lost at the cut, and nothing is recorded twice."""
    world, log = _once(_partitioned(20.5))
    assert world.ledger.duplicates >= 1
    assert any(r[1] == "drop" and r[2] == 9 and "done from w-1" in r[6] for r in log)
    assert sum(1 for r in log if r[1] == "complete" and r[2] == 9) == 1


def test_recover_returns_a_dropped_task_itself() -> None:
    """``ctx.recover`` on a dropped task gives the task back, not a copy."""
    cfg = config(horizon=1.0, agents=[{"group": "w", "count": 1}])
    cfg["scenario"]["network"] = {"loss": 1.0}
    world, _ = simulate_world(RunSpec.make(cfg, "p", (), 0))
    task = Task(99, "job", 0, 1.0, 0, float("inf"), (), 0.0, True)
    actor = world.agent_actors[0]
    world.kernel.send(world.coordinator_actor, actor, "task", task)
    assert task.state == DROPPED and task in world.kernel.dropped
    assert world.coordinator_actor.ctx.recover(task, actor) is task
    assert task not in world.kernel.dropped


def test_recover_takes_an_orphan_out_in_constant_time_keeping_the_loss_order() -> None:
    """``ctx.recover`` on a task lost with a crash gives the task back and takes it out of
    the agent's orphans, a dict used as an ordered set (no list scan: a long outage leaves
    thousands); ``ctx.reclaim`` returns the others in the order they were lost."""
    cfg = config(horizon=1.0, agents=[{"group": "w", "count": 1}])
    world, _ = simulate_world(RunSpec.make(cfg, "p", (), 0))
    lost = [Task(90 + i, "job", 0, 1.0, 0, float("inf"), (), 0.0, True) for i in range(4)]
    agent, actor = world.agents[0], world.agent_actors[0]
    agent.orphan(lost)
    assert isinstance(agent.orphans, dict)
    ctx = world.coordinator_actor.ctx
    assert ctx.recover(lost[1], actor) is lost[1]
    assert list(agent.orphans) == [lost[0], lost[2], lost[3]]
    assert ctx.reclaim(actor) == [lost[0], lost[2], lost[3]]
    assert not agent.orphans


@pytest.mark.parametrize(
    ("field", "bad", "message"),
    [
        ("loss", 1.5, "less than or equal to 1"),
        ("jitter", {"dist": "normal"}, "mean"),
        (
            "partitions",
            [{"up": constant(1.0), "down": constant(1.0), "groups": [["x"]]}],
            "unknown node, agent or group 'x'",
        ),
        ("partitions", [{"up": constant(1.0), "down": constant(1.0), "size": 1}], "below"),
        (
            "partitions",
            [{"up": constant(1.0), "down": constant(1.0), "groups": [["w"]], "name": "x"}] * 2,
            "duplicate partition clock name .* 'x'",
        ),
    ],
)
def test_network_faults_validate(field: str, bad: Any, message: str) -> None:
    from kossim.config.models import Experiment

    cfg = config(horizon=5.0)
    cfg["scenario"]["network"] = {field: bad}
    with pytest.raises(ValueError, match=message):
        Experiment.model_validate(cfg)


def test_random_partitions_cut_and_heal_on_their_clock() -> None:
    """A partition clock (up 10, down 5) cuts one agent node off, drawn at each cut."""
    cfg = config(horizon=46.0, agents=[{"group": "w", "count": 3}], work=0.1)
    cfg["scenario"]["network"] = {
        "latency": constant(0.01),
        "partitions": [{"up": constant(10.0), "down": constant(5.0), "size": 1}],
    }
    world, _ = simulate_world(RunSpec.make(cfg, "p", (), 0))
    marks = world.scenario_events.marks
    assert [(m[1], m[2]) for m in marks] == [(10.0, 15.0), (25.0, 30.0), (40.0, 45.0)]
    assert world.scenario_events.partitioned_time(0.0, 46.0) == 15.0
    assert world.scenario_events.partitioned_time(12.0, 27.0) == 5.0
    cfg["warmup"] = 12.0
    assert metrics(cfg)[("partitioned_time", "all")] == 5.0 + 5.0 + 5.0 - 2.0


def test_overlapping_partitions_count_their_union() -> None:
    """``partitioned_time`` is the time with some cut in force: overlaps count once; a
    cut still in force at the end counts to the end."""
    cfg = config(horizon=30.0, agents=[{"group": "w", "count": 3}], work=0.1)
    cfg["scenario"]["timeline"] = [
        {"at": 2, "kind": "partition", "groups": [["w-0"]], "until": 8},
        {"at": 5, "kind": "partition", "groups": [["w-1"]], "until": 10},
        {"at": 25, "kind": "partition", "groups": [["w-2"]]},
    ]
    assert metrics(cfg)[("partitioned_time", "all")] == 8.0 + 5.0
