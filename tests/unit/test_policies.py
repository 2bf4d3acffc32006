"""Built-in policy components on hand-built views: each decision, exactly.

Views are the engine's own :class:`AgentState` objects and tasks its
:class:`Task` objects, set up by hand, so the components see what they see
in a run. Frequencies of randomised choices are judged by a chi-square
goodness-of-fit test at significance 0.001 on a fixed seed.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import numpy as np
import pytest
from scipy import stats as sps

from kossim.registry import available, build, resolve
from kossim.sim.agent import AgentState
from kossim.sim.task import KeyedQueue, Task, make_queue

DRAWS = 3000
ALPHA = 1e-3


def view(
    index: int,
    queue_length: int = 0,
    work_outstanding: float = 0.0,
    speed: float = 1.0,
    skills: dict[str, float] | None = None,
) -> AgentState:
    v = AgentState(index, f"w-{index}", "w", speed, 1, skills or {}, 1.0)
    v.queue_length = queue_length
    v.work_outstanding = work_outstanding
    return v


def task(
    id: int = 0,
    work: float = 1.0,
    priority: int = 0,
    deadline: float = math.inf,
    arrival: float = 0.0,
    skills: tuple[str, ...] = (),
) -> Task:
    return Task(id, "job", 0, work, priority, deadline, skills, arrival, True)


def component(kind: str, ref: Any, seed: int = 0) -> Any:
    return build(resolve(kind, ref), np.random.default_rng(seed))


def choices(router: Any, cands: list[AgentState], n: int = DRAWS) -> list[int]:
    return [router.select(task(i), cands, 0.0).index for i in range(n)]


def assert_uniform(counts: Counter[int], support: list[int]) -> None:
    """Every choice in ``support``, with frequencies a chi-square test accepts as uniform."""
    assert set(counts) == set(support)
    observed = [counts[i] for i in support]
    assert sps.chisquare(observed).pvalue > ALPHA, observed


# -- routing -------------------------------------------------------------------------


def test_builtin_ids() -> None:
    """The registry offers the documented built-ins of each kind."""
    assert {"central", "push"} <= set(available("dispatch"))
    assert {"random", "round_robin", "jsq", "power_of_d", "least_work"} <= set(available("routing"))
    assert {"fcfs", "priority", "priority_preemptive", "srpt", "edf"} <= set(available("queue"))


def test_random_is_uniform_over_candidates() -> None:
    """``random`` picks any candidate with equal probability."""
    cands = [view(i) for i in (0, 3, 5, 7)]
    assert_uniform(Counter(choices(component("routing", "random"), cands)), [0, 3, 5, 7])


@pytest.mark.parametrize("ref", ["random", "jsq", {"id": "power_of_d", "d": 2}, "least_work"])
def test_randomised_router_same_seed_same_choices(ref: Any) -> None:
    """Two instances built with the same seed make the same sequence of choices."""
    cands = [view(i, queue_length=i % 2) for i in range(6)]
    a = choices(component("routing", ref, seed=11), cands, 200)
    b = choices(component("routing", ref, seed=11), cands, 200)
    c = choices(component("routing", ref, seed=12), cands, 200)
    assert a == b
    assert a != c


def test_jsq_picks_the_shortest_queue() -> None:
    """A unique shortest queue is always chosen."""
    cands = [view(0, 3), view(1, 1), view(2, 2), view(3, 5)]
    assert set(choices(component("routing", "jsq"), cands, 50)) == {1}


def test_jsq_breaks_ties_uniformly() -> None:
    """Ties between the shortest queues go to each of them equally often, never to others."""
    cands = [view(0, 2), view(1, 1), view(2, 4), view(3, 1), view(4, 1)]
    assert_uniform(Counter(choices(component("routing", "jsq"), cands)), [1, 3, 4])


def test_round_robin_cycles_in_index_order() -> None:
    """Agents in turn 0, 1, 2, 0, ...; an agent not offered is skipped."""
    rr = component("routing", "round_robin")
    cands = [view(i) for i in range(3)]
    assert choices(rr, cands, 7) == [0, 1, 2, 0, 1, 2, 0]
    partial = [cands[0], cands[2]]
    assert [rr.select(task(), partial, 0.0).index for _ in range(3)] == [2, 0, 2]


@pytest.mark.parametrize("d", [2, 3])
def test_power_of_d_samples_d_distinct_agents(d: int) -> None:
    """Sampling d distinct agents, the k-th shortest of n wins with C(n-k, d-1) / C(n, d).

    Distinct queue lengths make the winner the shortest sampled agent, so the
    d - 1 longest queues can never win; with replacement they could.
    """
    n = 6
    cands = [view(i, queue_length=10 * i) for i in range(n)]  # rank k = index + 1
    counts = Counter(choices(component("routing", {"id": "power_of_d", "d": d}), cands))
    probs = [math.comb(n - k, d - 1) / math.comb(n, d) for k in range(1, n + 1)]
    assert sum(probs) == pytest.approx(1.0)
    support = [i for i in range(n) if probs[i] > 0]
    assert set(counts) == set(support)
    observed = [counts[i] for i in support]
    expected = [DRAWS * probs[i] for i in support]
    assert sps.chisquare(observed, expected).pvalue > ALPHA, observed


def test_power_of_d_with_few_candidates_is_jsq() -> None:
    """With no more candidates than d, every candidate is compared: the shortest wins."""
    cands = [view(0, 4), view(1, 2)]
    assert set(choices(component("routing", {"id": "power_of_d", "d": 2}), cands, 50)) == {1}


def test_power_of_d_validates_d() -> None:
    """d must be at least 1; the message names the parameter."""
    with pytest.raises(ValueError, match="d"):
        resolve("routing", {"id": "power_of_d", "d": 0})


def test_least_work_counts_outstanding_and_own_service_time() -> None:
    """Expected finish = outstanding + work / (speed x proficiency); the earliest wins.

    Agent 0: 1.0 + 2/1 = 3.0; agent 1: 2.0 + 2/4 = 2.5; agent 2: 0.0 + 2/0.5 = 4.0.
    """
    cands = [
        view(0, work_outstanding=1.0, speed=1.0, skills={"x": 1.0}),
        view(1, work_outstanding=2.0, speed=2.0, skills={"x": 2.0}),
        view(2, work_outstanding=0.0, speed=0.5, skills={"x": 1.0}),
    ]
    router = component("routing", "least_work")
    assert router.select(task(work=2.0, skills=("x",)), cands, 0.0).index == 1


def test_least_work_breaks_ties_uniformly() -> None:
    """Equal expected finish times are chosen equally often."""
    cands = [view(i, work_outstanding=w) for i, w in enumerate((1.0, 1.0, 3.0))]
    assert_uniform(Counter(choices(component("routing", "least_work"), cands)), [0, 1])


def test_fastest_picks_the_highest_service_rate_for_the_task() -> None:
    """Rate = speed x proficiency in the task's skills: 2 x 0.5 = 1 < 1 x 1.5 = 1.5 < 3 x 1."""
    cands = [
        view(0, speed=2.0, skills={"x": 0.5}),
        view(1, speed=1.0, skills={"x": 1.5}),
        view(2, speed=3.0, skills={"x": 1.0}),
    ]
    router = component("routing", "fastest")
    assert router.select(task(skills=("x",)), cands, 0.0).index == 2
    assert router.select(task(skills=()), cands[:2], 0.0).index == 0  # no skills: speed alone


def test_fastest_breaks_ties_uniformly() -> None:
    cands = [view(i, speed=s) for i, s in enumerate((2.0, 2.0, 1.0))]
    assert_uniform(Counter(choices(component("routing", "fastest"), cands)), [0, 1])


def test_fastest_free_agent_beats_a_random_one_on_a_mixed_fleet() -> None:
    """Central dispatch over one fast (speed 3) and one slow agent at low load: sending work
    to the fast agent whenever it is free cuts the mean sojourn, significantly (paired by seed).
    """
    from kossim.analysis.stats import paired_t
    from kossim.runspec import RunSpec
    from kossim.sim import simulate

    cfg = {
        "name": "mixed",
        "horizon": 3000,
        "warmup": 300,
        "scenario": {
            "agents": [{"group": "fast", "speed": 3.0}, {"group": "slow", "speed": 1.0}],
            "workload": {
                "arrivals": {"process": "poisson", "rate": 1.0},
                "tasks": [{"type": "job", "work": {"dist": "exponential", "mean": 1.0}}],
            },
        },
        "policies": [
            {"name": "fastest", "dispatch": "central", "routing": "fastest"},
            {"name": "random", "dispatch": "central", "routing": "random"},
        ],
    }

    def sojourn(policy: str, seed: int) -> float:
        rows = simulate(RunSpec.make(cfg, policy, (), seed)).metrics
        return next(v for m, sc, v in rows if m == "sojourn_mean" and sc == "all")

    diffs = np.array([sojourn("fastest", s) - sojourn("random", s) for s in range(8)])
    low, high, p_value = paired_t(diffs)
    assert high < 0 and p_value < 0.01, (diffs.mean(), low, high, p_value)


# -- dispatch -------------------------------------------------------------------------


def test_dispatch_pull_flags() -> None:
    """``central`` keeps tasks at the coordinator (pull); ``push`` routes on arrival."""
    assert component("dispatch", "central").pull is True
    assert component("dispatch", "push").pull is False


# -- queue disciplines -------------------------------------------------------------------


def served_order(ref: Any, tasks: list[Task]) -> list[int]:
    """Task ids in the order the discipline's queue gives them back."""
    q = make_queue(component("queue", ref))
    for t in tasks:
        q.push(t)
    return [q.pop().id for _ in range(len(tasks))]


MIXED = [
    task(0, work=3.0, priority=2, deadline=9.0),
    task(1, work=1.0, priority=1, deadline=math.inf),
    task(2, work=2.0, priority=1, deadline=4.0),
    task(3, work=0.5, priority=0, deadline=7.0),
    task(4, work=1.0, priority=2, deadline=4.0),
]


@pytest.mark.parametrize(
    ("ref", "order", "preemptive"),
    [
        ("fcfs", [0, 1, 2, 3, 4], False),
        ("priority", [3, 1, 2, 0, 4], False),
        ("priority_preemptive", [3, 1, 2, 0, 4], True),
        ("srpt", [3, 1, 4, 2, 0], True),
        ("edf", [2, 4, 3, 0, 1], False),
        ({"id": "edf", "preemptive": True}, [2, 4, 3, 0, 1], True),
    ],
)
def test_discipline_order_and_preemption(ref: Any, order: list[int], preemptive: bool) -> None:
    """Smaller key first, ties by arrival (id); no deadline (inf) goes last under EDF."""
    assert served_order(ref, MIXED) == order
    assert component("queue", ref).preemptive is preemptive


def test_fcfs_uses_a_plain_fifo() -> None:
    """FCFS declares a constant key, so the engine keeps a deque; keyed ones get a heap."""
    assert component("queue", "fcfs").fifo is True
    assert not isinstance(make_queue(component("queue", "fcfs")), KeyedQueue)
    for ref in ("priority", "priority_preemptive", "srpt", "edf"):
        assert component("queue", ref).fifo is False
        assert isinstance(make_queue(component("queue", ref)), KeyedQueue)


def test_srpt_key_is_remaining_not_original_work() -> None:
    """A partly served long task ranks by what is left of it."""
    srpt = component("queue", "srpt")
    long, short = task(0, work=5.0), task(1, work=2.0)
    long.remaining = 1.0
    assert srpt.key(long) < srpt.key(short)
