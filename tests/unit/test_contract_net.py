"""Contract net on tiny deterministic scenarios: who is called on, what they bid, who wins.

Constant interarrival times, constant work and constant latencies make every
announcement, bid and award time known in advance; the tests assert on the
whole trace and on the execution log's decisions. The first arrival comes one
interarrival after time 0; under latency ``l`` a task reaches its winner
``3 l`` after it arrives (announce, bid, award).
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import pytest

from kossim.config.experiment import load_experiment
from kossim.config.loader import load_yaml_text
from kossim.lab.plan import make_plan
from kossim.runspec import RunSpec
from kossim.sim import simulate, simulate_world
from tests.property.test_conservation import guarded_engine
from tests.unit.test_engine import config, constant, metrics, run, trace

ROOT = Path(__file__).resolve().parents[2]


def cnp(**params: Any) -> dict[str, Any]:
    return {"coordinator": {"id": "contract_net", **params}, "dispatch": "push"}


def traced(cfg: dict[str, Any], seed: int = 0) -> tuple[dict[str, Any], list[tuple[Any, ...]]]:
    """Task columns and the decisions of the execution log: ``(time, kind, actor, fields)``."""
    spec = dataclasses.replace(RunSpec.make(cfg, "p", (), seed), trace=True)
    world, cols = simulate_world(spec)
    assert world.kernel.log is not None
    rows = [
        (round(r[0], 9), r[1], r[3], r[6])
        for r in world.kernel.log.rows
        if not r[1].startswith("send:")
    ]
    return cols, rows


def flat(rows: list[tuple[float, ...]]) -> list[float]:
    return [x for row in rows for x in row]


def decisions(rows: list[tuple[Any, ...]], kind: str) -> list[tuple[float, str]]:
    return [(t, reason) for t, k, _, reason in rows if k == kind]


def test_award_goes_to_the_earliest_completion_bid() -> None:
    """Bids count the work queued on the agent, not only its speed.

    a (speed 1) and b (speed 2), work 1 every 0.2, instant network. Task 0
    goes to b (0.5 < 1). Task 1: b would finish in 0.3 + 0.5 = 0.8 < 1, so b
    again, queued. Task 2: b would need 0.1 + 0.5 + 0.5 = 1.1 > 1: a wins.
    """
    cols, rows = traced(
        config(
            interarrival=0.2,
            work=1.0,
            tasks=3,
            agents=[{"group": "a", "speed": 1.0}, {"group": "b", "speed": 2.0}],
            policy=cnp(window=1.0),
        )
    )
    assert flat(trace(cols)) == pytest.approx(
        flat([(0.2, 0.2, 0.7), (0.4, 0.7, 1.2), (0.6, 0.6, 1.6)])
    )
    assert cols["agent"].tolist() == [1, 1, 0]
    bids = [
        (t, actor, reason.split(":")[1].split("=")[0].strip())
        for t, k, actor, reason in rows
        if k == "bid"
    ]
    assert bids == [
        (0.2, "a-0", "1"),
        (0.2, "b-0", "0.5"),
        (0.4, "a-0", "1"),
        (0.4, "b-0", "0.8"),
        (0.6, "a-0", "1"),
        (0.6, "b-0", "1.1"),
    ]
    awards = decisions(rows, "award")
    assert [reason.split(":")[0] for _, reason in awards] == [
        "task 0 -> b-0",
        "task 1 -> b-0",
        "task 2 -> a-0",
    ]
    assert all(reason.endswith("all 2 bids in") for _, reason in awards)


def test_bid_places_local_work_on_the_earliest_free_slot() -> None:
    """Capacity 2, work 1 every 0.1 from 0.1: slots free at 1.1 and 1.2. The third task (at
    0.3) would wait 0.8 for the first, bid 1.8; the fourth (at 0.4) would wait 0.8 too, for the
    second slot, the third task taking the first."""
    _, rows = traced(
        config(
            interarrival=0.1,
            work=1.0,
            tasks=4,
            agents=[{"group": "w", "capacity": 2}],
            policy=cnp(window=1.0),
        )
    )
    values = [float(reason.split(":")[1].split("=")[0]) for _, reason in decisions(rows, "bid")]
    assert values == pytest.approx([1.0, 1.0, 1.8, 1.8])


@pytest.mark.parametrize(("window", "winner", "start"), [(0.5, "near-0", 1.6), (3.0, "far-0", 4.0)])
def test_the_window_closes_the_auction_without_the_late_bid(
    window: float, winner: str, start: float
) -> None:
    """far (speed 4) is 1.0 away, near (speed 1) 0.1 away; one task of work 3 arrives at 1.0.

    Window 0.5: it closes at 1.5 with near's bid alone, and near serves the
    task from 1.6 to 4.6; far's bid (0.75), in at 3.0, is too late. Window
    3.0: both bids are in at 3.0, far wins and serves from 4.0 to 4.75.
    """
    cols, rows = traced(
        config(
            work=3.0,
            tasks=1,
            agents=[{"group": "near", "speed": 1.0}, {"group": "far", "speed": 4.0}],
            network={
                "latency": constant(0.1),
                "links": [{"a": "coordinator", "b": "far-0", "latency": constant(1.0)}],
            },
            policy=cnp(window=window),
        )
    )
    speed = 1.0 if winner == "near-0" else 4.0
    assert flat(trace(cols)) == pytest.approx([1.0, start, start + 3.0 / speed])
    (award,) = decisions(rows, "award")
    if winner == "near-0":
        assert award == (
            1.5,
            "task 0 -> near-0: bid 3, best of [near-0 3]; window closed with 1 of 2 bids",
        )
        assert decisions(rows, "late_bid") == [(3.0, "far-0 bid 0.75 after auction 1")]
    else:
        assert award == (
            3.0,
            "task 0 -> far-0: bid 0.75, best of [near-0 3, far-0 0.75]; all 2 bids in",
        )
        assert decisions(rows, "late_bid") == []


@pytest.mark.parametrize(
    ("count_awards", "agents", "second"),
    [(True, [1, 0], (0.5, 1.5)), (False, [1, 1], (1.025, 1.65))],
)
def test_work_awarded_since_the_call_counts_against_the_bid(
    count_awards: bool, agents: list[int], second: tuple[float, float]
) -> None:
    """a (speed 1) and b (speed 1.6), latency 0.1, work 1 at 0.1 and 0.2: the auctions overlap.

    Both bids of task 1 are made at 0.3, before task 0 (awarded to b at 0.3)
    reaches b, so b bids 0.625 again. Counting the award made since the call,
    b's bid is worth 1.25 > 1 and a gets task 1; on the bids alone b gets it
    too and task 1 waits behind task 0.
    """
    cols = run(
        config(
            interarrival=0.1,
            work=1.0,
            tasks=2,
            agents=[{"group": "a", "speed": 1.0}, {"group": "b", "speed": 1.6}],
            network={"latency": constant(0.1)},
            policy=cnp(window=1.0, count_awards=count_awards),
        )
    )
    assert cols["agent"].tolist() == agents
    assert flat(trace(cols)) == pytest.approx([0.1, 0.4, 1.025, 0.2, *second])


@pytest.mark.parametrize(("k", "agents"), [(None, 4), (2, 4), (1, 4), (3, 3)])
def test_messages_per_task_are_announce_bids_and_award(k: int | None, agents: int) -> None:
    """Every task costs ``min(k, agents)`` announcements, as many bids and one award."""
    called = min(k or agents, agents)
    m = metrics(
        config(
            interarrival=0.3,
            work=1.0,
            tasks=50,
            agents=[{"group": "w", "count": agents}],
            network={"latency": constant(0.1)},
            policy=cnp(window=0.5, k=k),
        )
    )
    assert m[("messages", "kind=announce")] == 50 * called
    assert m[("messages", "kind=bid")] == 50 * called
    assert m[("messages", "kind=task")] == 50
    assert m[("messages", "kind=done")] == 50
    assert m[("messages", "all")] == 50 * (2 * called + 2)


def test_k_sampling_calls_on_agents_uniformly() -> None:
    """k = 2 of 4 identical agents: each is called on about half the time (own stream)."""
    _, rows = traced(
        config(
            interarrival=1.0,
            work=0.5,
            tasks=400,
            agents=[{"group": "w", "count": 4}],
            network={"latency": constant(0.01)},
            policy=cnp(window=0.5, k=2),
        )
    )
    calls = {f"w-{i}": 0 for i in range(4)}
    for _, reason in decisions(rows, "announce"):
        for name in reason.split(": ")[1].split(", "):
            calls[name] += 1
    assert sum(calls.values()) == 800
    assert all(160 <= n <= 240 for n in calls.values()), calls


def test_no_bid_in_the_window_means_announcing_again_after_the_backoff() -> None:
    """Window 0.1 under latency 0.1: bids come back at +0.2, always too late; the task is
    announced at 1.0, 1.3, 1.6, 1.9 (window 0.1 + back-off 0.2) and never served."""
    cols, rows = traced(
        config(
            horizon=2.0,
            network={"latency": constant(0.1)},
            policy=cnp(window=0.1, backoff=0.2),
        )
    )
    assert [t for t, _ in decisions(rows, "announce")] == pytest.approx([1.0, 1.3, 1.6, 1.9])
    assert [t for t, _ in decisions(rows, "rebid")] == pytest.approx([1.1, 1.4, 1.7])
    assert (cols["start"] == -1).all()


def test_a_task_is_held_while_no_agent_is_believed_up() -> None:
    """The only agent is down from 0.5 to 1.5 (known at once); the task arriving at 1.0 is
    held, and announced when the repair report arrives at 1.6."""
    cols, rows = traced(
        config(
            work=0.05,
            network={"latency": constant(0.1)},
            failures={"agents": {"up": constant(0.5), "down": constant(1.0)}},
            policy=cnp(window=1.0),
        )
    )
    assert decisions(rows, "hold") == [(1.0, "task 0: no skilled agent believed up")]
    assert [t for t, _ in decisions(rows, "announce")] == pytest.approx([1.6])
    assert flat(trace(cols)) == pytest.approx(flat([(1.0, 1.9, 1.95)]))


@pytest.mark.parametrize("mode", ["resume", "restart", "requeue"])
@pytest.mark.parametrize("k", [None, 2])
def test_conservation_with_failures_and_latency(mode: str, k: int | None) -> None:
    """Failures, jittered latency and a short window: every task ends once or is still live."""
    cfg = config(
        horizon=300.0,
        agents=[{"group": "fast", "count": 2, "speed": 2.0}, {"group": "slow", "count": 3}],
        types=[{"type": "job", "work": {"dist": "exponential", "mean": 1.0}}],
        network={"latency": {"dist": "exponential", "mean": 0.1}},
        failures={
            "agents": {
                "up": {"dist": "exponential", "mean": 20.0},
                "down": {"dist": "exponential", "mean": 2.0},
                "detect": {"dist": "exponential", "mean": 0.5},
                "on_failure": mode,
                "max_attempts": 3,
            }
        },
        policy=cnp(window=0.3, k=k),
    )
    cfg["scenario"]["workload"]["arrivals"] = {"process": "poisson", "rate": 4.0}
    m = metrics(cfg, seed=3)
    assert m[("lost", "all")] == 0
    arrived = m[("arrived", "all")]
    assert arrived > 1000
    done = m[("completed", "all")] + m[("abandoned", "all")] + m[("in_flight", "all")]
    assert done == arrived
    assert m[("completed", "all")] > 0.95 * arrived


def test_same_seed_same_metrics() -> None:
    """A run is a pure function of its seed, k-sampling and tie-breaking included."""
    cfg = config(
        horizon=200.0,
        agents=[{"group": "w", "count": 6}],
        types=[{"type": "job", "work": {"dist": "exponential", "mean": 1.0}}],
        network={"latency": {"dist": "exponential", "mean": 0.05}},
        policy=cnp(window=0.2, k=3),
    )
    cfg["scenario"]["workload"]["arrivals"] = {"process": "poisson", "rate": 4.0}
    first, second, other = (
        simulate(RunSpec.make(cfg, "p", (), seed)).metrics for seed in (1, 1, 2)
    )
    assert repr(first) == repr(second)  # repr: NaN (no deadlines) equals itself
    assert repr(first) != repr(other)


def test_the_readme_policies_run_in_the_bundled_experiment(tmp_path: Path) -> None:
    """The README's contract-net policies validate in experiments/protocols/contract_net.yaml
    and each runs a short simulation without losing a task."""
    readme = (ROOT / "README.md").read_text()
    block = next(
        b for b in re.findall(r"```yaml\n(.*?)```", readme, flags=re.S) if "contract_net" in b
    )
    data, _ = load_yaml_text((ROOT / "experiments/protocols/contract_net.yaml").read_text())
    data["policies"] = load_yaml_text(block)[0]["policies"]
    data.pop("sweep")
    data.pop("expect", None)
    path = tmp_path / "exp.yaml"
    path.write_text(json.dumps(data))  # JSON is YAML
    plan = make_plan(load_experiment(path, ["seeds=1", "horizon=50", "warmup=5"]))
    assert sorted(spec.policy for spec in plan.specs) == ["cnp", "cnp_k2"]
    for spec in plan.specs:
        result = simulate(spec)
        assert result.status == "ok", result.error
        m = {(name, scope): v for name, scope, v in result.metrics}
        assert m[("lost", "all")] == 0
        assert m[("messages", "kind=announce")] == m[("messages", "kind=bid")] > 0


def test_a_preempted_task_returned_under_pull_is_announced_afresh() -> None:
    """Central dispatch with SRPT on an instant network: the worker returns a preempted task
    to the coordinator, which auctions it again once the preemption is over (the agent
    never runs more than its capacity), and every task completes."""
    cfg = config(
        interarrival=0.5,
        tasks=40,
        types=[
            {"type": "long", "work": constant(2.0)},
            {"type": "short", "work": constant(0.25)},
        ],
        agents=[{"group": "w", "count": 2}],
        policy={
            "coordinator": {"id": "contract_net", "window": 1.0},
            "dispatch": "central",
            "queue": "srpt",
        },
    )
    with guarded_engine():
        _, rows = traced(cfg)
    m = metrics(cfg)
    assert m[("messages", "kind=returned")] > 0
    announced = [reason.split(" ")[1] for _, reason in decisions(rows, "announce")]
    assert len(announced) == 40 + m[("messages", "kind=returned")]
    assert m[("completed", "all")] == 40
    assert m[("lost", "all")] == 0
