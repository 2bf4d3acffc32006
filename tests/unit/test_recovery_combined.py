"""The recovery mechanisms together: a coordinator that fails over while its retry queue
holds tasks, agents that crash, a partition from the timeline, a lossy network; and
``kossim trace`` following one task across retries, failover and partitions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kossim.config.experiment import load_experiment
from kossim.lab import run_experiment
from kossim.runspec import RunSpec
from kossim.sim import simulate, simulate_world
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
    during a failover and a drop on the lossy, partitioned network; `kossim trace --task`
    (read_events with a task filter) shows each such task's steps with their reasons."""
    cfg = _config(HOT, BACKOFF, 0.01)
    path = tmp_path / "combined.yaml"
    import json

    path.write_text(json.dumps({**cfg, "seeds": [1]}))
    loaded = load_experiment(path)
    out = tmp_path / "out"
    assert run_experiment(loaded, out, executor="serial", trace=True, progress=False).n_failed == 0
    events = read_events(out)
    by_kind = {
        kind: set(events.loc[events["kind"] == kind, "task"]) - {-1}
        for kind in ("retry", "hold", "drop", "timeout")
    }
    assert all(by_kind[k] for k in ("retry", "hold", "drop")), {
        k: len(v) for k, v in by_kind.items()
    }
    assert {"crash", "takeover", "timeline:partition"} <= set(events["kind"])
    for kind in ("retry", "hold", "drop"):
        task = min(by_kind[kind])
        life = read_events(out, EventFilter(task=task))
        assert kind in set(life["kind"]) and "arrive" in set(life["kind"])
        assert life["time"].is_monotonic_increasing and life["reason"].str.len().min() > 0
