"""Arbitration on lock contention: a request that waited past ``contended_after`` at a lock
service is an ``lock_contended`` event; the service and the locking agent carry out the
arbiter's ``wait``, ``escalate``, ``abort`` and ``reassign``."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from kossim.arbiter import Decision, Event, abort, escalate, reassign, wait
from kossim.runspec import RunSpec
from kossim.sim import simulate, simulate_world
from kossim.sim.kernel import Actor
from kossim.sim.task import ABANDONED, DONE, Task
from policies.locks import HeldLocks, Leases
from tests.unit.test_locks import _fencing_config

KINDS = {"grant", "lock_contended", "arbitrate", "lock_withdraw", "lock_escalate", "abandon"}
KINDS |= {"returned", "pause", "resume", "lock_request"}
LEASE = {"id": "lease", "duration": 8.0, "renew_every": 1.0, "contended_after": 1.0}
HELD = {"id": "held", "contended_after": 1.0}


def _paused_holder(arbiter: Any, locks: Any = None) -> dict[str, Any]:
    """The fencing tests' scenario (:func:`tests.unit.test_locks._fencing_config`), with a
    lease of 8 that can be contended: ``slow-0`` takes the lock on ``db`` for task 0 at 1.0
    and pauses from 1.2 to 6.2 (its lease outlives the pause: nothing expires); task 1,
    sent to ``fast-0`` at 2.0, asks at 2.0 and waits behind it until task 0's write at 6.5;
    a request waiting 1.0 is contended (at 3.0)."""
    cfg = _fencing_config(True)
    cfg["name"] = "contention"
    policy = cfg["policies"][0]
    policy["locks"] = locks or LEASE
    if arbiter is not None:
        policy["arbiter"] = arbiter
    return cfg


def _run(cfg: dict[str, Any]) -> tuple[dict[str, np.ndarray], dict[tuple[str, str], float], list]:
    spec = RunSpec.make(cfg, "p", (), 0, trace=True)
    world, cols = simulate_world(spec)
    result = simulate(spec)
    assert result.status == "ok", result.error
    m = {(k, s): v for k, s, v in result.metrics}
    assert world.kernel.log is not None
    log = [
        (round(r[0], 6), r[1], r[3], r[2], json.loads(r[7]) if r[7] else {})
        for r in world.kernel.log.rows
        if r[1] in KINDS
    ]
    return cols, m, log


def give_up(ev: Event) -> Decision:
    """Abort a contended request."""
    return abort(f"{ev['holder']} holds {ev['resource']}")


def hand_back(ev: Event) -> Decision:
    """Reassign a contended request the first time, then wait."""
    return reassign("another agent may do") if ev.count == 1 else wait("keep it")


def patient(ev: Event) -> Decision:
    """Wait, asking again every 1.5."""
    return wait("not yet", recheck=1.5)


def _arbitrations(log: list) -> list[tuple[float, str, dict[str, Any]]]:
    return [
        (t, f["decision"], {k: f[k] for k in ("count", "resource", "holder", "waited", "ahead")})
        for t, kind, _, _, f in log
        if kind == "arbitrate"
    ]


FACTS = {"count": 1, "resource": "db", "holder": "slow-0", "waited": 1.0, "ahead": 0}


def test_without_an_arbiter_a_contended_request_is_reported_once_and_waits() -> None:
    cols, m, log = _run(_paused_holder(None))
    assert [(t, k) for t, k, *_ in log if k in ("lock_contended", "arbitrate")] == [
        (3.0, "lock_contended")
    ]
    assert cols["end"].tolist() == [6.5, 7.0]
    assert m[("lock_contended", "all")] == 1 and ("arbitrations", "all") not in m


@pytest.mark.parametrize("service", [LEASE, HELD], ids=["lease", "held"])
def test_abort_withdraws_the_request_and_the_agent_ends_the_task(service: Any) -> None:
    """Task 1's request has waited 1.0 behind paused ``slow-0`` at 3.0: the user function
    aborts it; the service withdraws it and ``fast-0`` frees its slot and abandons the task
    (reporting ``done``) at once; the holder's task completes at 6.5, nothing else waits."""
    cols, m, log = _run(_paused_holder("tests.unit.test_lock_arbitration:give_up", service))
    assert _arbitrations(log) == [(3.0, "abort", FACTS)]
    carried = [(t, k, who, task) for t, k, who, task, _ in log if 3.0 <= t < 6.2]
    assert carried == [
        (3.0, "lock_contended", "lock:db", 1),
        (3.0, "arbitrate", "lock:db", 1),
        (3.0, "lock_withdraw", "lock:db", 1),
        (3.0, "abandon", "fast-0", 1),
        (3.0, "abandon", "world", 1),
    ]
    assert cols["end"].tolist() == [6.5, 3.0]
    assert cols["state"].tolist() == [DONE, ABANDONED]
    assert m[("arbitrations", "event=lock_contended")] == m[("arbiter_aborts", "all")] == 1
    assert (m[("lost", "all")], m[("abandoned", "all")], m[("lock_grants", "all")]) == (0, 1, 1)
    assert m[("lock_waiting", "all")] == 0


def test_reassign_withdraws_the_request_and_the_task_is_dispatched_anew() -> None:
    """``reassign``: ``fast-0`` sends task 1 back (``returned``) at 3.0; round robin sends it
    to ``slow-0``, which handles it when it resumes and takes the lock after its own task
    (token 2 at 6.5): both complete, the second at 7.0."""
    cols, m, log = _run(_paused_holder("tests.unit.test_lock_arbitration:hand_back"))
    assert _arbitrations(log) == [(3.0, "reassign", FACTS)]
    after = [(t, k, who) for t, k, who, task, _ in log if task == 1 and t >= 3.0]
    assert after == [
        (3.0, "lock_contended", "lock:db"),
        (3.0, "arbitrate", "lock:db"),
        (3.0, "lock_withdraw", "lock:db"),
        (3.0, "returned", "fast-0"),
        (6.5, "lock_request", "slow-0"),
        (6.5, "grant", "lock:db"),
    ]
    assert cols["end"].tolist() == [6.5, 7.0]
    assert cols["state"].tolist() == [DONE, DONE]
    assert m[("arbiter_reassigns", "all")] == 1 and m[("lost", "all")] == 0
    assert m[("completed", "agent=slow-0")] == 2


def test_wait_with_recheck_asks_again_while_the_request_waits() -> None:
    """``wait`` with ``recheck: 1.5`` asks at 3.0, 4.5 and 6.0; the grant at 6.5 ends it.
    ``lock_contended`` counts the request once, ``arbitrations`` every ask."""
    cols, m, log = _run(_paused_holder("tests.unit.test_lock_arbitration:patient"))
    asks = _arbitrations(log)
    assert [(t, d, f["count"], f["waited"]) for t, d, f in asks] == [
        (3.0, "wait", 1, 1.0),
        (4.5, "wait", 2, 2.5),
        (6.0, "wait", 3, 4.0),
    ]
    assert cols["end"].tolist() == [6.5, 7.0]
    assert m[("lock_contended", "all")] == 1
    assert m[("arbitrations", "event=lock_contended")] == m[("arbitrations", "decision=wait")] == 3


class _Ctx:
    """What a lock service uses of its context; ``arbitrate`` escalates task 2."""

    tracing = False
    resource = "db"
    now = 0.0

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, Any]] = []
        self.timers: list[tuple[float, str]] = []
        self.asked: list[dict[str, Any]] = []

    def send(self, to: Actor, kind: str, payload: Any) -> None:
        self.sent.append((to.name, kind, payload[2]))

    def after(self, delay: float, kind: str, payload: Any = None) -> None:
        self.timers.append((delay, kind))

    def requested(self) -> None:
        pass

    def granted(self, *args: Any) -> None:
        pass

    def contended(self, *args: Any, **kw: Any) -> None:
        pass

    def arbitrate(self, kind: str, task: Task | None = None, **facts: Any) -> Decision:
        self.asked.append({"kind": kind, **facts})
        return escalate("urgent", step=1)


def _service(cls: type[Leases], priorities: list[int]) -> tuple[Leases, _Ctx, list[Actor]]:
    """A service whose lock ``w0`` holds (token 1), and requests of the given priorities
    waiting behind it, in order."""
    service = cls(cls.Params(contended_after=2.0), np.random.default_rng(0))
    ctx = _Ctx()
    service.on_start(ctx)
    agents = [Actor("agent", f"w{i}", f"w{i}") for i in range(len(priorities) + 1)]
    for i, (a, p) in enumerate(zip(agents, [0, *priorities], strict=True)):
        service.on_acquire(a, (Task(i, "t", 0, 1.0, p, np.inf, (), 0.0, True), "exclusive", 1))
    return service, ctx, agents


@pytest.mark.parametrize("cls", [Leases, HeldLocks])
def test_escalate_moves_the_request_ahead_of_lower_priority_waiters(cls: type[Leases]) -> None:
    """Task 3 (priority 1) waits behind tasks 1 (priority 0) and 2 (priority 1). Escalated
    to 0 it passes task 2, not task 1 (FIFO among equals), and is asked again after the
    bound; tokens follow the new order."""
    service, ctx, agents = _service(cls, [0, 1, 1])
    entry = service.waiting[2]
    assert entry.task.id == 3
    service.on_contended(None, ((agents[3].name, 3, 0), entry))
    assert ctx.asked == [
        {
            "kind": "lock_contended",
            "count": 1,
            "resource": "db",
            "holder": "w0",
            "waited": 0.0,
            "ahead": 2,
        }
    ]
    assert entry.task.priority == 0
    assert [e.task.id for e in service.waiting] == [1, 3, 2]
    assert (2.0, "contended") in ctx.timers
    for token in (1, 2, 3):
        service.on_release(agents[0], token)
    assert [(who, kind) for who, kind, _ in ctx.sent[1:]] == [
        ("w1", "granted"),
        ("w3", "granted"),
        ("w2", "granted"),
    ]


def test_escalate_never_passes_an_equal_priority() -> None:
    """Task 3, escalated from 2 to 1, passes task 2 (priority 2) but not task 1 (priority
    1, before it); no waiter of a higher or equal priority is ever passed."""
    service, _, agents = _service(Leases, [1, 2, 2])
    service.on_contended(None, ((agents[3].name, 3, 0), service.waiting[2]))
    assert [(e.task.id, e.task.priority) for e in service.waiting] == [(1, 1), (3, 1), (2, 2)]
    service, _, agents = _service(Leases, [2, 1, 2])
    service.on_contended(None, ((agents[3].name, 3, 0), service.waiting[2]))
    assert [(e.task.id, e.task.priority) for e in service.waiting] == [(1, 2), (2, 1), (3, 1)]
