"""The recovery mechanisms together: a coordinator that fails over while its retry queue
holds tasks, agents that crash, a partition from the timeline, a lossy network; and
``kossim trace`` following one task across retries, failover and partitions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kossim.config.experiment import load_experiment
from kossim.lab import run_experiment
from kossim.runspec import RunSpec
from kossim.sim import simulate, simulate_world
from kossim.sim.task import DROPPED
from kossim.trace import EventFilter, read_events

HOT = {"id": "hot", "heartbeat": 1.0, "timeout": 3.0}
BACKOFF = {"id": "backoff", "base": 1, "cap": 20, "jitter": "full", "timeout": 5}


def _config(standby: Any, retry: Any, loss: float) -> dict[str, Any]:
    policy: dict[str, Any] = {"name": "p", "dispatch": "central", "standby": standby}
    if retry is not None:
        policy["retry"] = retry
    return {
        "name": "combined",
        "horizon": 800.0,
        "warmup": 50.0,
        "scenario": {
            "agents": [{"group": "w", "count": 6}],
            "network": {"latency": {"dist": "exponential", "mean": 0.05}, "loss": loss},
            "workload": {
                "arrivals": {"process": "poisson", "rate": 3.5},
                "tasks": [{"type": "job", "work": {"dist": "exponential", "mean": 1.0}}],
            },
            "failures": {
                "coordinator": {
                    "up": {"dist": "exponential", "mean": 150},
                    "down": {"dist": "exponential", "mean": 30},
                },
                "agents": {
                    "up": {"dist": "exponential", "mean": 80},
                    "down": {"dist": "exponential", "mean": 10},
                    "on_failure": "requeue",
                    "detect": {"dist": "constant", "value": 1.0},
                },
            },
            "timeline": [
                {"at": 300, "kind": "partition", "groups": [["w-0", "w-1"]], "until": 360}
            ],
        },
        "policies": [policy],
    }


@pytest.mark.parametrize("standby", ["none", HOT])
@pytest.mark.parametrize("loss", [0.0, 0.01])
def test_retries_survive_a_coordinator_failover(standby: Any, loss: float) -> None:
    """A crashed coordinator's retry queue goes back to the entry with its waiting tasks
    (its timers die with it: a timer belongs to the behaviour that set it, so a coordinator
    restarted as a standby never hears of one); every arrival is recorded once, none lost."""
    for seed in range(3):
        cfg = _config(standby, BACKOFF, loss)
        result = simulate(RunSpec.make(cfg, "p", (), seed))
        assert result.status == "ok", result.error
        m = {(name, scope): v for name, scope, v in result.metrics}
        assert m[("lost", "all")] == 0
        assert m[("coordinator_failures", "all")] > 0 and m[("retry_sends", "all")] > 0
        world, cols = simulate_world(RunSpec.make(cfg, "p", (), seed))
        assert sorted(cols["id"].tolist()) == list(range(world.arrived))


def test_trace_follows_a_task_across_retries_failover_and_partitions(tmp_path: Path) -> None:
    """The execution log of one traced run has, for some tasks, a retry, a hold at the entry
    during a failover, a drop on the lossy, partitioned network and the entry's resend of
    an unacknowledged arrival; `kossim trace --task` (read_events with a task filter) shows
    each such task's steps with their reasons."""
    cfg = _config(HOT, BACKOFF, 0.01)
    path = tmp_path / "combined.yaml"
    path.write_text(json.dumps({**cfg, "seeds": [1]}))
    loaded = load_experiment(path)
    out = tmp_path / "out"
    assert run_experiment(loaded, out, executor="serial", trace=True, progress=False).n_failed == 0
    events = read_events(out)
    by_kind = {
        kind: set(events.loc[events["kind"] == kind, "task"]) - {-1}
        for kind in ("retry", "hold", "drop", "timeout", "resend")
    }
    assert all(by_kind[k] for k in ("retry", "hold", "drop", "resend")), {
        k: len(v) for k, v in by_kind.items()
    }
    assert {"crash", "takeover", "timeline:partition"} <= set(events["kind"])
    for kind in ("retry", "hold", "drop", "resend"):
        task = min(by_kind[kind])
        life = read_events(out, EventFilter(task=task))
        assert kind in set(life["kind"]) and "arrive" in set(life["kind"])
        assert life["time"].is_monotonic_increasing and life["reason"].str.len().min() > 0


def _durable(durable: bool) -> dict[str, Any]:
    """A task is sent at 10 while every link from the coordinator loses everything (the
    timeline), and the coordinator crashes at 10.5, before that attempt times out (5);
    a hot standby leads from 10 + 0.1 + 3 (the last beat, the latency, the timeout)."""
    links = [
        {"at": 9.95, "kind": "link", "a": "coordinator", "b": f"w-{i}", "loss": 1.0, "until": 10.05}
        for i in range(3)
    ]
    return {
        "name": "durable",
        "horizon": 40.0,
        "scenario": {
            "agents": [{"group": "w", "count": 3}],
            "network": {"latency": {"dist": "constant", "value": 0.1}},
            "workload": {
                "arrivals": {
                    "process": "renewal",
                    "interarrival": {"dist": "constant", "value": 1},
                },
                "tasks": [{"type": "job", "work": {"dist": "constant", "value": 0.5}}],
            },
            "timeline": [*links, {"at": 10.5, "kind": "kill_coordinator", "until": 30}],
        },
        "policies": [
            {
                "name": "p",
                "dispatch": "central",
                "standby": {"id": "hot", "heartbeat": 1.0, "timeout": 3.0},
                "retry": {"id": "backoff", "base": 0.5, "cap": 1, "timeout": 5, "durable": durable},
            }
        ],
    }


@pytest.mark.parametrize("durable", [True, False])
def test_a_durable_retry_log_recovers_an_attempt_its_crashed_coordinator_sent(
    durable: bool,
) -> None:
    """Durable: the successor reads the timed sends and times out the one the network
    dropped (at 10 + 5), so the task is re-sent and completes; not durable: it stays
    dropped (the retry state died with the coordinator)."""
    world, cols = simulate_world(RunSpec.make(_durable(durable), "p", (), 0, trace=True))
    assert world.kernel.log is not None
    state = dict(zip(cols["id"].tolist(), cols["state"].tolist(), strict=True))
    from kossim.sim.task import DONE

    task = 9  # the tenth arrival, at time 10
    assert state[task] == (DONE if durable else DROPPED)
    kinds = [r[1] for r in world.kernel.log.rows if r[2] == task]
    assert "drop" in kinds and ("timeout" in kinds) == durable
    timeouts = [r[0] for r in world.kernel.log.rows if r[2] == task and r[1] == "timeout"]
    assert timeouts == ([pytest.approx(15.0)] if durable else [])


def test_the_entry_leaves_no_arrival_dropped() -> None:
    """Acknowledged submission: arrivals the lossy network drops between the entry and a
    standby leader are re-sent until acked. A task still dropped at the end was lost on a
    dispatch whose attempt had not yet timed out (retry timeout 5), or on an entry's
    message whose resend was still due (ack_timeout 1, default); none otherwise."""
    entry_losses = 0
    for seed in range(3):
        cfg = _config(HOT, BACKOFF, 0.01)
        world, cols = simulate_world(RunSpec.make(cfg, "p", (), seed, trace=True))
        assert world.kernel.log is not None and world.failover is not None
        end = world.recorder.end_time
        assert sorted(cols["id"].tolist()) == list(range(world.arrived))
        last: dict[int, tuple[float, str]] = {}
        for row in world.kernel.log.rows:
            if row[1] == "drop" and row[3] == "network" and row[2] >= 0:
                src = json.loads(row[7])["src"]
                last[row[2]] = (row[0], src)
                entry_losses += src == "entry"
        unacked = {t.id for t in world.failover.door.unacked}
        for task in cols["id"][cols["state"] == DROPPED].tolist():
            when, src = last[task]
            if src == "entry":
                assert task in unacked and when > end - 1.0, (seed, task, when)
            else:
                assert when > end - BACKOFF["timeout"], (seed, task, when, src)
        m = {
            (name, scope): v
            for name, scope, v in simulate(RunSpec.make(cfg, "p", (), seed)).metrics
        }
        assert m[("entry_resends", "all")] > 0 and m[("lost", "all")] == 0
    assert entry_losses > 0


def test_a_drained_run_leaves_no_arrival_dropped() -> None:
    """The only lossy link is between the entry's node and the standby's (loss 0.05; the
    agents reach the standby directly): once the run drains, every arrival has completed
    and none is left dropped, though many submissions were lost on the way."""
    cfg = _config(HOT, None, 0.0)
    del cfg["horizon"], cfg["scenario"]["timeline"], cfg["scenario"]["failures"]["agents"]
    cfg["tasks"] = 1500
    standby = "coordinator-standby-1"
    cfg["scenario"]["nodes"] = [{"name": standby}]
    latency = {"dist": "exponential", "mean": 0.05}
    cfg["scenario"]["network"]["links"] = [
        {"a": "coordinator", "b": standby, "latency": latency, "loss": 0.05},
        *({"a": f"w-{i}", "b": standby, "latency": latency} for i in range(6)),
    ]
    for seed in range(3):
        result = simulate(RunSpec.make(cfg, "p", (), seed))
        assert result.status == "ok", result.error
        m = {(name, scope): v for name, scope, v in result.metrics}
        assert m[("coordinator_failures", "all")] > 0
        assert m[("messages_dropped", "kind=arrival")] > 0 and m[("entry_resends", "all")] > 0
        assert m[("dropped", "all")] == 0 and m[("in_flight", "all")] == 0
        assert m[("lost", "all")] == 0


def test_the_first_leader_surrenders_its_retry_queue_when_it_crashes() -> None:
    """Task 9's dispatch (at 10) is lost; it times out at 15 and waits for its retry (due
    at 17); the coordinator, the first incarnation of the primary, crashes at 16. The task
    goes back to the entry with the crashed coordinator's queue and completes after the
    restart at 18 (it used to vanish: the retry queue of the primary's first incarnation,
    which became a leader after it started, was not surrendered)."""
    cfg = _durable(True)
    policy = cfg["policies"][0]
    policy["standby"] = "none"
    policy["retry"] = {"id": "backoff", "base": 2, "cap": 4, "jitter": "none", "timeout": 5}
    cfg["scenario"]["timeline"][-1] = {"at": 16, "kind": "kill_coordinator", "until": 18}
    world, cols = simulate_world(RunSpec.make(cfg, "p", (), 0, trace=True))
    assert world.kernel.log is not None
    from kossim.sim.task import DONE

    state = dict(zip(cols["id"].tolist(), cols["state"].tolist(), strict=True))
    assert sorted(state) == list(range(world.arrived)) and state[9] == DONE
    life = [(r[0], r[1]) for r in world.kernel.log.rows if r[2] == 9]
    assert (pytest.approx(15.0), "retry") in life
    assert (pytest.approx(16.0), "hold") in life and (pytest.approx(18.0), "release") in life
    crash = [r[6] for r in world.kernel.log.rows if r[1] == "crash"]
    assert crash == ["coordinator crashes (timeline kill): 1 waiting tasks"]
