"""Delegation chains on tiny deterministic scenarios: exact traces of every hand-off.

Agents have one slot and tasks take 10, so an agent that got a task stays
full for the whole scenario; the coordinator pushes task ``i`` to the agent
``plan[i]`` (the ``Scripted`` router below). Every link has latency 0.05 and
the network is a star around the coordinator, so a message from one agent to
another crosses two links: 0.1.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kossim.config.experiment import load_experiment
from kossim.config.loader import load_yaml_text
from kossim.errors import KossimInputError
from kossim.lab import run_experiment
from kossim.policy import AgentView, Component, Params, TaskView
from kossim.report import render_report
from kossim.runspec import RunSpec
from kossim.sim import simulate, simulate_world
from kossim.sim.task import ABANDONED, DONE
from kossim.sim.world import World
from policies.peer_loads import PeerLoads
from tests.property.test_conservation import guarded_engine, scenarios
from tests.unit.test_engine import config, constant, trace


class ScriptedParams(Params):
    plan: list[int] = [0]


class Scripted(Component):
    """Routing for tests: decision ``i`` picks candidate ``plan[min(i, len(plan) - 1)]``."""

    kind = "routing"
    id = "scripted"
    Params = ScriptedParams
    made = 0

    def select(self, task: TaskView, candidates: Sequence[AgentView], now: float) -> AgentView:
        plan = self.params.plan
        choice = plan[min(self.made, len(plan) - 1)]
        self.made += 1
        return candidates[choice]


def scenario(agent: dict[str, Any], plan: list[int], tasks: int, agents: int = 3) -> dict[str, Any]:
    cfg = config(
        interarrival=1.0,
        work=10.0,
        tasks=tasks,
        agents=[{"group": "w", "count": agents}],
        network={"latency": constant(0.05)},
        policy={
            "dispatch": "push",
            "routing": {"id": "tests.unit.test_delegation:Scripted", "plan": plan},
            "agent": {"id": "delegating", **agent},
        },
    )
    cfg["drain_limit"] = 100  # tasks take 10: let the run drain
    return cfg


def run(cfg: dict[str, Any]) -> tuple[World, dict[str, np.ndarray]]:
    world, cols = simulate_world(RunSpec.make(cfg, "p", (), 0, trace=True))
    world.env.run(until=world.env.now + 1.0)  # let the last reports arrive
    return world, cols


def decisions(world: World) -> list[tuple[float, str, str]]:
    """``(time, kind, reason)`` of the agents' logged decisions."""
    log = world.kernel.log
    assert log is not None
    engine = {"arrive", "route", "start", "complete", "abandon", "crash", "repair"}
    return [
        (round(r[0], 9), r[1], r[6])
        for r in log.rows
        if not r[1].startswith("send:") and r[1] not in engine
    ]


def views_settled(world: World) -> bool:
    """The coordinator's views show nothing outstanding and no delegation pending."""
    coord = world.coordinator
    return all(v.queue_length == 0 for v in coord.views) and not coord.delegated


def approx_trace(cols: dict[str, np.ndarray]) -> list[tuple[float, float, float]]:
    return [tuple(round(x, 9) for x in row) for row in trace(cols)]  # type: ignore[misc]


def test_a_full_agent_delegates_to_the_least_loaded_peer_it_heard_of() -> None:
    """w-1 gossips its load (1 after task 0 reaches it) to w-0, so w-0, full, passes task 2
    to w-2 rather than to w-1, which ties would pick: received at 3.05, held 0.1, sent at
    3.15, started on w-2 at 3.25 after 0.1 on the wire."""
    world, cols = run(scenario({"decision_delay": 0.1, "gossip": 0.5}, [1, 0, 0], tasks=3))
    assert approx_trace(cols) == [(1.0, 1.05, 11.05), (2.0, 2.05, 12.05), (3.0, 3.25, 13.25)]
    assert cols["agent"].tolist() == [1, 0, 2]
    assert cols["hops"].tolist() == [0, 0, 1]
    assert cols["handoff"].tolist() == pytest.approx([0.0, 0.0, 0.2])
    assert decisions(world) == [(3.15, "delegate", "task 2 w-0 -> w-2: full")]
    assert world.kernel.counts()["delegate"] == 1
    assert world.kernel.counts()["load"] > 0
    assert views_settled(world)


def test_without_news_ties_go_round_and_a_lighter_peer_is_required() -> None:
    """With no gossip w-0 knows only what it sent: tasks 1 and 2 go to w-1 then w-2; task 3
    finds no peer known to be lighter than itself and waits on w-0."""
    world, cols = run(scenario({"decision_delay": 0.1}, [0], tasks=4))
    assert approx_trace(cols) == [
        (1.0, 1.05, 11.05),
        (2.0, 2.25, 12.25),
        (3.0, 3.25, 13.25),
        (4.0, 11.05, 21.05),
    ]
    assert cols["agent"].tolist() == [0, 1, 2, 0]
    assert cols["hops"].tolist() == [0, 1, 1, 0]
    assert decisions(world) == [
        (2.15, "delegate", "task 1 w-0 -> w-1: full"),
        (3.15, "delegate", "task 2 w-0 -> w-2: full"),
        (4.15, "keep", "task 3 kept: full, no lighter peer known"),
    ]
    assert world.kernel.counts()["moved"] == 2  # the coordinator hears where each one went
    assert world.kernel.counts()["finished"] == 2
    assert views_settled(world)


def test_metrics_count_hops_delegation_delay_and_messages() -> None:
    """Two of four tasks made one hop each, 0.2 apiece in hand-offs; the fourth was held for
    the decision delay (0.1) before w-0 kept it: (0.2 + 0.2 + 0.1) / 4."""
    spec = RunSpec.make(scenario({"decision_delay": 0.1}, [0], tasks=4), "p", (), 0, trace=True)
    result = simulate(spec)
    assert result.status == "ok", result.error
    assert result.tasks is not None
    by_id = result.tasks["task"].argsort()  # the trace lists tasks in the order they ended
    assert result.tasks["handoff"][by_id].tolist() == pytest.approx([0.0, 0.2, 0.2, 0.1])
    m = {(name, scope): v for name, scope, v in result.metrics}
    assert m[("hops_mean", "all")] == 0.5
    assert m[("hops_mean", "type=job")] == 0.5
    assert m[("delegation_delay_mean", "all")] == pytest.approx(0.125)
    assert m[("messages", "kind=delegate")] == 2
    assert [m[("hops_share", f"hops={k}")] for k in range(4)] == [0.5, 0.5, 0.0, 0.0]
    assert m[("lost", "all")] == 0


def test_a_queued_task_not_started_in_time_is_recalled_and_passed_on() -> None:
    """w-0 keeps one task queued (queue_limit 1); task 2 overflows to w-1 at once. Task 1,
    queued at 2.05, is recalled at 4.05 and sent to w-2, the peer w-0 has not loaded yet."""
    agent = {"queue_limit": 1, "reassign_after": 2.0}
    world, cols = run(scenario(agent, [0], tasks=3))
    assert approx_trace(cols) == [(1.0, 1.05, 11.05), (2.0, 4.15, 14.15), (3.0, 3.15, 13.15)]
    assert cols["agent"].tolist() == [0, 2, 1]
    assert cols["hops"].tolist() == [0, 1, 1]
    assert decisions(world) == [
        (3.05, "delegate", "task 2 w-0 -> w-1: queue 1 >= limit 1"),
        (4.05, "recall", "task 1 not started within 2"),
        (4.05, "delegate", "task 1 w-0 -> w-2: not started within 2"),
    ]
    assert views_settled(world)


def test_a_recall_timer_is_cancelled_when_the_task_starts() -> None:
    """Work 1: the queued task starts before its recall is due and is never moved."""
    cfg = scenario({"queue_limit": 1, "reassign_after": 2.0}, [0], tasks=2)
    cfg["scenario"]["workload"]["tasks"][0]["work"] = constant(1.5)
    world, cols = run(cfg)
    assert approx_trace(cols) == [(1.0, 1.05, 2.55), (2.0, 2.55, 4.05)]
    assert cols["hops"].tolist() == [0, 0]
    assert decisions(world) == []


@pytest.mark.parametrize(
    ("on_max_hops", "expected", "where", "state", "handoff"),
    [
        ("keep", (3.0, 12.25, 22.25), 1, DONE, 0.2),
        ("coordinator", (3.0, 11.05, 21.05), 0, DONE, 0.25),
        ("abandon", (3.0, -1.0, 3.25), -1, ABANDONED, 0.2),
    ],
)
def test_past_max_hops_the_task_is_kept_returned_or_abandoned(
    on_max_hops: str, expected: tuple[float, ...], where: int, state: int, handoff: float
) -> None:
    """max_hops 1, two full agents: task 2 reaches w-1 at 3.25 with its one hop made.
    ``keep`` queues it on w-1; ``coordinator`` hands it back (at 3.30), the coordinator
    sends it to w-0, which keeps it (a task at its limit sent by the coordinator stays);
    ``abandon`` ends it at w-1."""
    agent = {"rule": "random", "max_hops": 1, "on_max_hops": on_max_hops, "decision_delay": 0.1}
    world, cols = run(scenario(agent, [0], tasks=3, agents=2))
    assert approx_trace(cols)[2] == expected
    assert int(cols["agent"][2]) == where
    assert int(cols["state"][2]) == state
    assert cols["hops"].tolist() == [0, 1, 1]
    assert float(cols["handoff"][2]) == pytest.approx(handoff)
    assert (3.25, "max_hops", f"task 2 at 1 hops (full): {on_max_hops}") in decisions(world)
    assert views_settled(world)


def test_an_unskilled_agent_passes_the_task_to_a_skilled_peer() -> None:
    """min_proficiency 0.8: w-0 (0.5) passes on at once; only w-2 (1.0) qualifies."""
    cfg = scenario({"min_proficiency": 0.8}, [0], tasks=1)
    cfg["scenario"]["agents"] = [
        {"group": "w", "count": 2, "skills": {"code": 0.5}},
        {"group": "x", "count": 1, "skills": {"code": 1.0}},
    ]
    cfg["scenario"]["workload"]["tasks"][0]["skills"] = ["code"]
    world, cols = run(cfg)
    assert approx_trace(cols) == [(1.0, 1.15, 11.15)]
    assert cols["agent"].tolist() == [2]
    assert decisions(world) == [(1.05, "delegate", "task 0 w-0 -> x-0: proficiency 0.5 < 0.8")]


def test_rule_coordinator_hands_the_task_back_as_a_hop() -> None:
    """Back up to the coordinator, which routes it again (to w-1 by the plan)."""
    world, cols = run(scenario({"rule": "coordinator"}, [0, 0, 1], tasks=2, agents=2))
    assert approx_trace(cols) == [(1.0, 1.05, 11.05), (2.0, 2.15, 12.15)]
    assert cols["hops"].tolist() == [0, 1]
    assert world.kernel.counts()["handback"] == 1
    assert views_settled(world)


# -- hop limit and conservation on random scenarios -----------------------------------


@given(
    cfg=scenarios(),
    seed=st.integers(0, 2**16),
    agent=st.fixed_dictionaries(
        {
            "rule": st.sampled_from(["least_loaded", "random", "coordinator"]),
            "max_hops": st.integers(0, 3),
            "on_max_hops": st.sampled_from(["keep", "coordinator", "abandon"]),
            "queue_limit": st.integers(0, 2),
            "min_proficiency": st.sampled_from([0.0, 1.0]),
            "decision_delay": st.sampled_from([0.0, 0.1]),
            "reassign_after": st.sampled_from([None, 0.5, 3.0]),
            "gossip": st.sampled_from([None, 1.0]),
        }
    ),
)
def test_delegation_never_exceeds_max_hops_and_loses_nothing(
    cfg: dict[str, Any], seed: int, agent: dict[str, Any]
) -> None:
    """Any scenario, failures included: hops <= max_hops, every arrival accounted for, and
    (without failures, once the reports are in) the coordinator's views settle at zero."""
    cfg["policies"][0]["agent"] = {"id": "delegating", **agent}
    spec = RunSpec.make(cfg, "p", (), seed)
    with guarded_engine():
        world, cols = simulate_world(spec)
    assert cols["id"].tolist() == list(range(world.arrived))
    assert int(cols["hops"].max(initial=0)) <= agent["max_hops"]
    done = cols["state"] == DONE
    ended = done | (cols["state"] == ABANDONED)
    assert (cols["handoff"][ended] >= -1e-9).all()
    assert (cols["end"][done] - cols["arrival"][done] >= cols["handoff"][done] - 1e-9).all()
    live = world.live_tasks()
    assert world.in_system == len(live)
    if "failures" not in cfg["scenario"] and not live:
        world.env.run(until=world.env.now + 50.0)
        assert views_settled(world)
    result = simulate(spec)
    assert result.status == "ok", result.error
    m = {(name, scope): v for name, scope, v in result.metrics}
    assert m[("lost", "all")] == 0


# -- the README's example and the report --------------------------------------------


def test_the_readme_example_is_the_experiments_policies() -> None:
    """The README's delegating policies are those of experiments/protocols/delegation.yaml."""
    root = Path(__file__).resolve().parents[2]
    readme = (root / "README.md").read_text()
    block = next(
        b for b in re.findall(r"```yaml\n(.*?)```", readme, flags=re.S) if "delegating" in b
    )
    shown = load_yaml_text(block)[0]["policies"]
    experiment = load_yaml_text((root / "experiments/protocols/delegation.yaml").read_text())[0]
    assert shown == [p for p in experiment["policies"] if p["name"] in ("random", "delegating")]


def test_the_report_shows_the_hop_distribution_of_delegating_policies(tmp_path: Path) -> None:
    """A section tabulates the share of tasks by hops, for the delegating policy only."""
    cfg = scenario({"decision_delay": 0.1}, [0], tasks=4)
    cfg["policies"].append({"name": "plain", "dispatch": "push"})
    cfg["seeds"] = 1
    path = tmp_path / "exp.yaml"
    path.write_text(json.dumps(cfg))
    run_experiment(load_experiment(path), tmp_path / "out", executor="serial", progress=False)
    render_report(tmp_path / "out")
    report = (tmp_path / "out" / "report.md").read_text()
    assert "| policy | 0 hops | 1 hops | 2 hops | 3 hops |" in report
    assert "| p | 50.0 % | 50.0 % | 0.0 % | 0.0 % |" in report
    assert "| plain |" not in report.split("Hand-offs per task")[-1].split("<a id=")[0]


def test_peer_loads_give_the_lightest_peer_from_news_only() -> None:
    """Ties go to the next agent after this one; news moves a peer; the excluded peer is
    skipped unless it is the only one; a skill set holds only the peers that serve it."""
    serves = {("a",): [0, 2, 3], ("b",): [3]}
    loads = PeerLoads(1, 4, lambda skills: serves[skills])
    assert loads.lightest(("a",), exclude=-1) == 2
    loads.learned(2, 0.5)
    assert loads.lightest(("a",), exclude=-1) == 3
    assert loads.lightest(("a",), exclude=3) == 0
    for step in range(50):  # stale entries pile up, then are dropped
        loads.learned(3, 0.1 * (step % 3))
    assert loads.lightest(("a",), exclude=-1) == 0  # 3 last heard at 0.1 > 0.0
    assert loads.lightest(("b",), exclude=3) == 3


def test_a_coordinator_that_cannot_hear_delegations_fails_at_load(tmp_path: Path) -> None:
    """Delegating agents tell the coordinator of moves; a tree has no handler for them, so
    the pairing is refused at the policy's ``agent`` field, naming coordinators that work."""
    cfg = config(
        tasks=3,
        policy={"coordinator": {"id": "tree", "branching": 2}, "agent": "delegating"},
    )
    path = tmp_path / "exp.yaml"
    path.write_text(json.dumps(cfg))
    with pytest.raises(KossimInputError) as err:
        load_experiment(path)
    problem = str(err.value)
    assert "policies.0.agent" in problem, problem
    assert "coordinator 'tree' does not handle (moved, finished, handback)" in problem
    assert "coordinators that do: bundles, contract_net, queueing, trust_gated" in problem
