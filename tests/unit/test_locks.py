"""Leases, locks and fencing; agent pauses: exact traces of small scenarios, and load checks."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import pytest

from kossim.config.experiment import load_experiment
from kossim.errors import KossimInputError
from kossim.lab import run_experiment
from kossim.runspec import RunSpec
from kossim.sim import simulate, simulate_world
from kossim.sim.kernel import Actor, Kernel
from kossim.sim.task import Task
from policies.locks import Leases

ROOT = Path(__file__).resolve().parents[2]
KINDS = {
    "lock_contended",
    "grant",
    "lease_expiry",
    "fenced_write",
    "safety_violation",
    "pause",
    "resume",
    "retry",
}


def _fencing_config(fencing: bool) -> dict[str, Any]:
    """Agent ``slow-0`` pauses from 1.2 to 6.2; ``fast-0`` never. Two transactions (work 0.5,
    an exclusive lock on ``db``) arrive at 1.0 and 2.0, sent round-robin: slow first."""
    return {
        "name": "fencing",
        "seeds": 1,
        "tasks": 2,
        "scenario": {
            "agents": [
                {
                    "group": "slow",
                    "pause": {
                        "every": {"dist": "constant", "value": 1.2},
                        "length": {"dist": "constant", "value": 5.0},
                    },
                },
                {"group": "fast"},
            ],
            "resources": [{"name": "db"}],
            "workload": {
                "arrivals": {
                    "process": "renewal",
                    "interarrival": {"dist": "constant", "value": 1.0},
                },
                "tasks": [
                    {"type": "txn", "work": {"dist": "constant", "value": 0.5}, "locks": ["db"]}
                ],
            },
        },
        "policies": [
            {
                "name": "p",
                "dispatch": "push",
                "routing": "round_robin",
                "agent": "locking",
                "locks": {"id": "lease", "duration": 2.0, "renew_every": 0.5, "fencing": fencing},
            }
        ],
    }


def _run(cfg: dict[str, Any]) -> tuple[dict[str, np.ndarray], dict[str, float], list[Any]]:
    spec = RunSpec.make(cfg, "p", (), 0, trace=True)
    _, cols = simulate_world(spec)
    result = simulate(spec)
    assert result.status == "ok", result.error
    assert result.events is not None
    ev = result.events
    log = [
        (round(float(t), 6), k, int(task))
        for t, k, task in zip(ev["time"], ev["kind"], ev["task"], strict=True)
        if k in KINDS
    ]
    return cols, {m: v for m, s, v in result.metrics if s == "all"}, log


def test_a_paused_holders_stale_write_is_fenced() -> None:
    """The lease of paused ``slow-0`` expires at 3.0 (granted at 1.0, never renewed); ``fast-0``
    gets token 2 and writes at 3.5; ``slow-0`` resumes at 6.2 and writes with token 1 at 6.5:
    refused, so its task runs again (token 3) and completes at 7.0, attempt 2."""
    cols, m, log = _run(_fencing_config(True))
    assert log == [
        (1.0, "grant", 0),
        (1.2, "pause", -1),
        (3.0, "lease_expiry", 0),
        (3.0, "grant", 1),
        (6.2, "resume", -1),
        (6.5, "fenced_write", 0),
        (6.5, "retry", 0),
        (6.5, "grant", 0),
    ]
    assert cols["end"].tolist() == [7.0, 3.5]
    assert cols["attempts"].tolist() == [2, 1]
    assert (m["fenced_writes"], m["safety_violations"], m["lease_expiries"]) == (1, 0, 1)
    assert (m["lock_grants"], m["resource_writes"], m["lost"]) == (3, 2, 0)
    assert m["lock_wait_mean"] == pytest.approx(1 / 3)  # task 1 waited 1.0 of three grants


def test_without_fencing_the_stale_write_is_a_safety_violation() -> None:
    """The same schedule without fencing: the write with token 1 overwrites token 2's write,
    is accepted and counted; the task completes at 6.5, attempt 1."""
    cols, m, log = _run(_fencing_config(False))
    assert log[-2:] == [(6.2, "resume", -1), (6.5, "safety_violation", 0)]
    assert cols["end"].tolist() == [6.5, 3.5]
    assert cols["attempts"].tolist() == [1, 1]
    assert (m["fenced_writes"], m["safety_violations"], m["resource_writes"]) == (0, 1, 2)


def test_a_pause_stops_work_and_holds_messages() -> None:
    """A worker pauses from 1.2 to 3.2: task 0 (1.0 + 0.3 of work) ends at 3.3, not 1.3; task
    1, sent at 2.0 while it is paused, is handled at 3.2 and starts when the slot frees."""
    cfg = {
        "name": "pause",
        "seeds": 1,
        "tasks": 2,
        "scenario": {
            "agents": [
                {
                    "group": "w",
                    "pause": {
                        "every": {"dist": "constant", "value": 1.2},
                        "length": {"dist": "constant", "value": 2.0},
                    },
                }
            ],
            "network": {"latency": {"dist": "constant", "value": 0.0}},
            "workload": {
                "arrivals": {
                    "process": "renewal",
                    "interarrival": {"dist": "constant", "value": 1.0},
                },
                "tasks": [{"type": "job", "work": {"dist": "constant", "value": 0.3}}],
            },
        },
        "policies": [{"name": "p", "dispatch": "push", "routing": "random"}],
    }
    spec = RunSpec.make(cfg, "p", (), 0)
    _, cols = simulate_world(spec)
    assert cols["start"].tolist() == pytest.approx([1.0, 3.3])
    assert cols["end"].tolist() == pytest.approx([3.3, 3.6])
    m = {(k, s): v for k, s, v in simulate(spec).metrics}
    assert m[("pauses", "all")] == m[("pauses", "group=w")] == 1
    assert m[("paused_time", "all")] == pytest.approx(2.0)


def _takeover_config(service: Any) -> dict[str, Any]:
    """``a-0`` takes the lock for task 0 (work 2) at 1.0 and crashes at 1.5 for good (requeue):
    the coordinator re-sends task 0 to ``b-0``, which asks for the lock at 1.5."""
    return {
        "name": "takeover",
        "seeds": 1,
        "horizon": 8.0,
        "scenario": {
            "agents": [{"group": "a"}, {"group": "b"}],
            "resources": [{"name": "db"}],
            "workload": {
                "arrivals": {
                    "process": "renewal",
                    "interarrival": {"dist": "constant", "value": 1.0},
                },
                "tasks": [
                    {"type": "txn", "work": {"dist": "constant", "value": 2.0}, "locks": ["db"]}
                ],
            },
            "failures": {
                "agents": {
                    "up": {"dist": "constant", "value": 1.5},
                    "down": {"dist": "constant", "value": 100.0},
                    "on_failure": "requeue",
                    "only": ["a"],
                }
            },
        },
        "policies": [
            {
                "name": "p",
                "dispatch": "push",
                "routing": "round_robin",
                "agent": "locking",
                "locks": service,
            }
        ],
    }


def test_a_lease_frees_a_crashed_holders_lock_and_a_held_lock_never() -> None:
    """With a lease of 1 renewed every 0.3 the crashed holder's last renewal is at 1.3, so
    ``b-0`` is granted token 2 for task 0 at 2.3; a lock held until released is never
    freed, and every later request waits."""
    _, m, log = _run(_takeover_config({"id": "lease", "duration": 1.0, "renew_every": 0.3}))
    grants = [(t, task) for t, k, task in log if k == "grant"]
    assert grants[:2] == [(1.0, 0), (2.3, 0)]
    assert m["lease_expiries"] >= 1 and m["lock_waiting"] == 0
    assert (1.0, "grant", 0) in log and (2.3, "lease_expiry", 0) in log
    _, held, log = _run(_takeover_config("held"))
    assert [x for x in log if x[1] == "grant"] == [(1.0, "grant", 0)]
    assert held["lock_grants"] == 1 and held["lock_waiting"] >= 1
    assert held["lease_expiries"] == 0


def test_a_request_waiting_beyond_the_bound_is_reported_contended() -> None:
    """``contended_after: 1``: task 0's request, queued at 1.5 behind the crashed holder's
    lock, is reported at 2.5 (once), the place where an arbiter would be called."""
    _, m, log = _run(_takeover_config({"id": "held", "contended_after": 1.0}))
    assert [x for x in log if x[1] == "lock_contended"] == [(2.5, "lock_contended", 0)]
    assert m["lock_contended"] == 1


class _Ctx:
    """What a lock service uses of its context, recording what it sends."""

    tracing = False
    resource = "db"
    now = 0.0

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, int]] = []

    def send(self, to: Actor, kind: str, payload: Any) -> None:
        self.sent.append((to.name, kind, payload[2]))

    def after(self, delay: float, kind: str, payload: Any = None) -> None:
        pass

    def requested(self) -> None:
        pass

    def granted(self, *args: Any) -> None:
        pass


def test_shared_locks_are_granted_together_and_fifo_without_barging() -> None:
    """Two readers share the lock; a writer waits for both; a reader behind the writer waits
    for it too (no barging), and tokens follow grant order."""
    service = Leases(Leases.Params(), np.random.default_rng(0))
    ctx = _Ctx()
    service.on_start(ctx)
    agents = [Actor("agent", n, n) for n in ("r1", "r2", "w", "r3")]
    modes = ["shared", "shared", "exclusive", "shared"]
    for i, (a, mode) in enumerate(zip(agents, modes, strict=True)):
        service.on_acquire(a, (Task(i, "t", 0, 1.0, 0, np.inf, (), 0.0, True), mode, 1))
    assert ctx.sent == [("r1", "granted", 1), ("r2", "granted", 2)]
    service.on_release(agents[0], 1)
    assert len(ctx.sent) == 2
    service.on_release(agents[1], 2)
    assert ctx.sent[2:] == [("w", "granted", 3)]
    service.on_release(agents[2], 3)
    assert ctx.sent[3:] == [("r3", "granted", 4)]


def _problem(tmp_path: Path, cfg: dict[str, Any]) -> str:
    path = tmp_path / "exp.yaml"
    path.write_text(json.dumps(cfg))
    with pytest.raises(KossimInputError) as err:
        load_experiment(path)
    return str(err.value)


@pytest.mark.parametrize(
    ("change", "located", "says"),
    [
        (lambda c: c["policies"][0].pop("locks"), "policies.0.locks", "runs no lock service"),
        (lambda c: c["policies"][0].pop("agent"), "policies.0.agent", "agents that do: locking"),
        (
            lambda c: c["scenario"]["workload"]["tasks"][0].update(locks=["dbb"]),
            "scenario.workload.tasks.0.locks.0.resource",
            "did you mean 'db'",
        ),
        (
            lambda c: c["policies"][0]["locks"].update(renew_every=2.0),
            "policies.0.locks",
            "must be below duration",
        ),
        (
            lambda c: c["scenario"]["resources"][0].update(node="nowhere"),
            "scenario.resources.0.node",
            "unknown node 'nowhere'",
        ),
    ],
)
def test_inconsistent_lock_configs_are_refused_at_the_field(
    tmp_path: Path, change: Any, located: str, says: str
) -> None:
    cfg = copy.deepcopy(_fencing_config(True))
    change(cfg)
    text = _problem(tmp_path, cfg)
    assert located in text and says in text, text


def test_without_locks_nothing_changes() -> None:
    """A scenario without resources builds plain agents and no lock actors."""
    cfg = _fencing_config(True)
    del cfg["scenario"]["resources"]
    cfg["scenario"]["workload"]["tasks"][0].pop("locks")
    del cfg["scenario"]["agents"][0]["pause"]
    world, _ = simulate_world(RunSpec.make(cfg, "p", (), 0))
    assert {type(a).__name__ for a in world.agents} == {"Agent"}
    assert world.services == []


def test_the_readme_example_runs(tmp_path: Path) -> None:
    """The README's leases experiment loads and runs: stale writes without fencing are
    counted, with fencing refused."""
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```yaml\n(name: leases-example\n.*?)```", text, re.S)
    assert block is not None
    path = tmp_path / "leases.yaml"
    path.write_text(block.group(1))
    loaded = load_experiment(path)
    outcome = run_experiment(loaded, tmp_path / "out", executor="serial", progress=False)
    assert outcome.n_failed == 0
    got: dict[tuple[str, str], float] = {}
    for spec in outcome.plan.specs:
        for m, s, v in simulate(spec).metrics:
            if s == "all":
                got[(spec.policy, m)] = got.get((spec.policy, m), 0.0) + v
    assert got[("fenced", "safety_violations")] == 0
    assert got[("unfenced", "fenced_writes")] == 0
    assert got[("unfenced", "safety_violations")] + got[("fenced", "fenced_writes")] > 0
    assert got[("fenced", "lost")] == 0 and got[("unfenced", "lost")] == 0


def _lossy(drop: str, timeout: float | None) -> tuple[dict[str, np.ndarray], list[Any]]:
    """One agent, one transaction at 1.0 (work 0.5), latency 0.01; the first ``drop``
    message is lost on the wire (a stand-in for a lossy network)."""
    cfg = _fencing_config(True)
    cfg["tasks"] = 1
    sc = cfg["scenario"]
    sc["agents"] = [{"group": "w"}]
    sc["network"] = {"latency": {"dist": "constant", "value": 0.01}}
    agent: dict[str, Any] = {"id": "locking", "answer_timeout": timeout} if timeout else "locking"
    cfg["policies"][0]["agent"] = agent
    send = Kernel.send
    dropped: list[Kernel] = []  # the runs (each its kernel) that lost their message

    def lossy(kernel: Kernel, src: Actor, dst: Actor, kind: str, *rest: Any) -> None:
        if kind == drop and kernel not in dropped:
            dropped.append(kernel)
            return
        send(kernel, src, dst, kind, *rest)

    with mock.patch.object(Kernel, "send", lossy):
        cols, _, log = _run(cfg)
    return cols, log


def test_with_an_answer_timeout_a_lost_request_is_sent_again() -> None:
    """The first ``acquire`` (sent at 1.01) is lost: it is sent again at 2.01 and granted
    (token 1) at 2.02."""
    cols, log = _lossy("acquire", 1.0)
    assert [x for x in log if x[1] == "grant"] == [(2.02, "grant", 0)]
    assert cols["attempts"].tolist() == [1] and cols["end"][0] > 0


def test_with_an_answer_timeout_a_lost_write_fails_its_attempt() -> None:
    """The first ``write`` (sent at 1.53) is lost: its attempt fails at 2.53, the task goes
    back to the coordinator and is granted token 2 at 2.56 (four hops of 0.01); without a
    timeout it would wait for ever (in flight)."""
    cols, log = _lossy("write", 1.0)
    assert [x for x in log if x[1] == "grant"] == [(1.02, "grant", 0), (2.56, "grant", 0)]
    assert cols["attempts"].tolist() == [2] and cols["end"][0] > 0
    stuck, _ = _lossy("write", None)
    assert stuck["end"].tolist() == [-1.0]
