"""Leases with fencing on random crash, pause, latency, loss and partition schedules
(Hypothesis, derandomized in CI).

Whatever the system (the conservation test's random scenarios, with resources that
task types lock exclusively or shared, agents that pause for longer than a lease,
crashes under every failure semantics, network latency, messages lost on every link,
random partitions cutting agents off the lock services, agents that ask again or wait
for ever): with fencing on, no stale
write is ever accepted (``safety_violations`` is 0); every resource's fencing tokens
are granted in strictly increasing order 1, 2, 3, ...; the lock service never holds
an exclusive lease beside another lease; and every arrival is accounted for exactly
once (``lost`` is 0; a task whose message was lost or cut is ``dropped``, a counted
outcome), with each start and ending checked as it happens.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

from hypothesis import given
from hypothesis import strategies as st

from kossim.runspec import RunSpec
from kossim.sim import simulate, simulate_world
from kossim.sim.locks import LockBook, Resource
from policies.locks import Leases
from tests.property.test_conservation import guarded_engine, scenarios


@st.composite
def locked_scenarios(draw: st.DrawFn, fencing: bool = True) -> dict[str, Any]:
    """A conservation scenario whose task types lock one or two resources, whose agent
    groups may pause (sometimes for longer than a lease), under a lease service."""
    cfg = draw(scenarios())
    cfg.pop("warmup", None)  # every write is counted: the figures cover the whole run
    cfg.pop("warmup_tasks", None)
    sc = cfg["scenario"]
    names = ["r0", "r1"][: draw(st.integers(1, 2))]
    sc["resources"] = [{"name": n} for n in names]
    for t in sc["workload"]["tasks"]:
        held = draw(st.lists(st.sampled_from(names), unique=True, max_size=2))
        t["locks"] = [
            {"resource": r, "mode": draw(st.sampled_from(["exclusive", "exclusive", "shared"]))}
            for r in held
        ]
    if not any(t["locks"] for t in sc["workload"]["tasks"]):
        sc["workload"]["tasks"][0]["locks"] = [names[0]]
    draw_network_faults(draw, sc)
    duration = draw(st.sampled_from([0.5, 1.5, 4.0]))
    for g in sc["agents"]:
        if draw(st.booleans()):
            every = draw(st.sampled_from([2.0, 8.0, 20.0]))
            length = draw(st.sampled_from([0.2, 1.0, 3.0])) * duration
            kind = draw(st.sampled_from(["constant", "exponential"]))
            g["pause"] = {
                "every": {"dist": "exponential", "mean": every},
                "length": {"dist": kind, "value": length}
                if kind == "constant"
                else {"dist": kind, "mean": length},
            }
    policy = cfg["policies"][0]
    timeout = draw(st.sampled_from([None, 0.5, 3.0]))
    policy["agent"] = {"id": "locking", "answer_timeout": timeout} if timeout else "locking"
    policy["locks"] = {
        "id": "lease",
        "duration": duration,
        "renew_every": duration * draw(st.sampled_from([0.2, 0.5, 0.9])),
        "fencing": fencing,
        "contended_after": draw(st.sampled_from([None, 1.0])),
    }
    return cfg


def draw_network_faults(draw: st.DrawFn, sc: dict[str, Any]) -> None:
    """Message loss on every link and random partitions: a group of agents (or one agent
    node drawn at each cut), or the node of the resources and their lock services, cut
    off from the rest, so holders fall silent and leases lapse behind the cut."""
    network = sc.setdefault("network", {})
    network["loss"] = draw(st.sampled_from([0.0, 0.0, 0.01, 0.1]))
    store = draw(st.booleans())
    if store:  # the resources and their lock services on a node of their own
        sc["nodes"] = [{"name": "store"}]
        for r in sc["resources"]:
            r["node"] = "store"
    if draw(st.booleans()):
        agents = sum(g["count"] for g in sc["agents"])
        side = draw(st.sampled_from([g["group"] for g in sc["agents"]]))
        groups = [["store" if store and draw(st.booleans()) else side]]
        shape = {"size": 1} if agents > 1 and draw(st.booleans()) else {"groups": groups}
        network["partitions"] = [
            {
                "up": {"dist": "exponential", "mean": draw(st.sampled_from([3.0, 15.0]))},
                "down": {"dist": "exponential", "mean": draw(st.sampled_from([0.5, 4.0]))},
                **shape,
            }
        ]


@contextmanager
def exclusive_leases() -> Iterator[None]:
    """After every grant, a resource with an exclusive lease has no other lease."""
    grant = Leases._grant

    def checked(service: Leases) -> None:
        grant(service)
        modes = [lease.mode for lease in service.holders.values()]
        assert "exclusive" not in modes or len(modes) == 1, f"leases held together: {modes}"

    with mock.patch.object(Leases, "_grant", checked):
        yield


def _book(world: Any) -> LockBook:
    return next(a.behaviour for a in world.services if isinstance(a.behaviour, LockBook))


@given(cfg=locked_scenarios(), seed=st.integers(0, 2**16))
def test_fencing_accepts_no_stale_write(cfg: dict[str, Any], seed: int) -> None:
    """Zero safety violations, tokens 1, 2, 3, ... per resource, exclusive leases alone, and
    conservation, on random crash, pause and latency schedules."""
    spec = RunSpec.make(cfg, "p", (), seed)
    with guarded_engine(), exclusive_leases():
        world, cols = simulate_world(spec)
    assert cols["id"].tolist() == list(range(world.arrived)), "each arrival appears exactly once"
    for name, figures in _book(world).figures.items():
        assert figures.violations == 0, f"{name}: {figures.violations} stale writes accepted"
        assert figures.tokens == list(range(1, len(figures.tokens) + 1)), name
    result = simulate(spec)
    assert result.status == "ok", result.error
    m = {(k, s): v for k, s, v in result.metrics}
    assert m[("lost", "all")] == 0
    assert m[("safety_violations", "all")] == 0
    ended = sum(m[(k, "all")] for k in ("completed", "abandoned", "rejected", "dropped"))
    assert ended + m[("in_flight", "all")] == m[("arrived", "all")]


@given(cfg=locked_scenarios(fencing=False), seed=st.integers(0, 2**16))
def test_without_fencing_stale_writes_are_only_counted(cfg: dict[str, Any], seed: int) -> None:
    """Without fencing nothing is refused (``fenced_writes`` 0), and what is accepted out of
    token order is what ``safety_violations`` counts; tokens and conservation as with it."""
    spec = RunSpec.make(cfg, "p", (), seed)
    written: dict[str, list[int]] = {}
    on_write = Resource.on_write

    def recorded(resource: Resource, sender: Any, write: tuple[Any, int]) -> None:
        written.setdefault(resource.name, []).append(write[1])
        on_write(resource, sender, write)

    with guarded_engine(), exclusive_leases(), mock.patch.object(Resource, "on_write", recorded):
        world, cols = simulate_world(spec)
    assert cols["id"].tolist() == list(range(world.arrived))
    for name, figures in _book(world).figures.items():
        tokens = written.get(name, [])
        stale = sum(1 for i, t in enumerate(tokens) if t < max(tokens[:i], default=0))
        assert figures.fenced == 0
        assert figures.violations == stale, (name, tokens)
        assert figures.tokens == list(range(1, len(figures.tokens) + 1))
