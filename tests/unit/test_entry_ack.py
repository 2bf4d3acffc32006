"""Acknowledged submission under coordinator failover: the leading coordinator acks each
arrival the entry sends it; the entry re-sends an unacknowledged one ``ack_timeout`` after
it sent it, to the leader it knows; a resend of a task the ring accepted already (its ack
was lost) is acked again and not enqueued twice."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kossim.config.experiment import load_experiment
from kossim.errors import KossimInputError
from kossim.runspec import RunSpec
from kossim.sim import simulate, simulate_world
from kossim.sim.task import DONE

LINK = ("coordinator", "coordinator-standby-1")  # the entry's node and the standby's


def _config(lose: tuple[float, float], ack_timeout: float = 2.0) -> dict[str, Any]:
    """Arrivals every 1 (task k at k + 1), latency 0.1 per hop, the agents linked to the
    standby's node directly. The coordinator crashes at 2.5; the hot standby hears its last
    beat at 2.1 and leads from 5.1. The link between the entry's node and the standby's
    loses everything during ``lose``."""
    return {
        "name": "ack",
        "horizon": 40.0,
        "scenario": {
            "agents": [{"group": "w", "count": 3}],
            "nodes": [{"name": LINK[1]}],  # declared, so that the timeline can name it
            "network": {
                "latency": {"dist": "constant", "value": 0.1},
                "links": [  # the agents reach the standby directly: the lossy link is the entry's
                    {"a": f"w-{i}", "b": LINK[1], "latency": {"dist": "constant", "value": 0.1}}
                    for i in range(3)
                ],
            },
            "workload": {
                "arrivals": {
                    "process": "renewal",
                    "interarrival": {"dist": "constant", "value": 1},
                },
                "tasks": [{"type": "job", "work": {"dist": "constant", "value": 0.5}}],
            },
            "timeline": [
                {"at": 2.5, "kind": "kill_coordinator", "until": 60},
                {"at": lose[0], "kind": "link", "a": LINK[0], "b": LINK[1], "loss": 1.0}
                | {"until": lose[1]},
            ],
        },
        "policies": [
            {
                "name": "p",
                "dispatch": "central",
                "standby": {"id": "hot", "heartbeat": 1.0, "timeout": 3.0}
                | {"ack_timeout": ack_timeout},
            }
        ],
    }


def _life(cfg: dict[str, Any], task: int) -> tuple[Any, list[tuple[Any, ...]], dict[str, float]]:
    world, cols = simulate_world(RunSpec.make(cfg, "p", (), 0, trace=True))
    assert world.kernel.log is not None
    rows = [r for r in world.kernel.log.rows if r[2] == task]
    state = dict(zip(cols["id"].tolist(), cols["state"].tolist(), strict=True))
    assert state[task] == DONE
    result = simulate(RunSpec.make(cfg, "p", (), 0))
    assert result.status == "ok", result.error
    metrics = {name: v for name, scope, v in result.metrics if scope == "all"}
    assert metrics["lost"] == 0 and metrics["dropped"] == 0
    return world, rows, metrics


def test_a_lost_submission_is_resent_after_the_ack_timeout() -> None:
    """Task 9 is sent to the standby leader at 10 and lost on the link; the entry re-sends
    it at 10 + ack_timeout 2 = 12, the leader gets it at 12.1 and its agent at 12.2."""
    world, rows, metrics = _life(_config((9.95, 10.05)), 9)
    kinds = [(r[0], r[1]) for r in rows]
    assert (pytest.approx(10.0), "drop") in kinds
    resends = [r for r in rows if r[1] == "resend"]
    assert [r[0] for r in resends] == [pytest.approx(12.0)]
    assert "not acknowledged by coordinator-standby-1 within 2" in resends[0][6]
    submit = [r for r in rows if r[1] == "submit"]
    assert [r[0] for r in submit] == [pytest.approx(12.1)]
    assert "after its submission was lost: accepted" in submit[0][6]
    starts = [r[0] for r in rows if r[1] == "start"]
    assert starts == [pytest.approx(12.2)]
    assert metrics["entry_resends"] == 1 and metrics["entry_duplicates"] == 0
    assert not world.failover.door.unacked


def test_a_resend_whose_ack_was_lost_is_acked_again_not_enqueued_twice() -> None:
    """Task 9 reaches the leader at 10.1, whose ack (sent at 10.1) is lost: the entry
    re-sends it at 10 + ack_timeout 0.4 while it runs (10.2 to 10.7); the leader gets the
    resend at 10.5, recognises it, acks it again, and the task runs once."""
    world, rows, metrics = _life(_config((10.05, 10.15), ack_timeout=0.4), 9)
    assert [r[0] for r in rows if r[1] == "resend"] == [pytest.approx(10.4)]
    submit = [r for r in rows if r[1] == "submit"]
    assert [r[0] for r in submit] == [pytest.approx(10.5)]
    assert "a duplicate, acked again, not enqueued" in submit[0][6]
    assert [r[0] for r in rows if r[1] == "start"] == [pytest.approx(10.2)]
    assert [r[0] for r in rows if r[1] == "send:ack"] == [
        pytest.approx(10.1),
        pytest.approx(10.5),
    ]
    assert metrics["entry_resends"] == 1 and metrics["entry_duplicates"] == 1
    assert not world.failover.door.unacked


def test_the_ack_timeout_is_validated(tmp_path: Path) -> None:
    """``ack_timeout`` is a positive time, checked at load and located in the file."""
    path = tmp_path / "ack.yaml"
    path.write_text(json.dumps(_config((9.95, 10.05), ack_timeout=0.0), indent=1))
    with pytest.raises(KossimInputError) as err:
        load_experiment(path)
    assert "ack_timeout" in str(err.value) and "ack.yaml:" in str(err.value)
