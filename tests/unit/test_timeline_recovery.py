"""Timeline kinds of the recovery mechanisms: ``kill_coordinator`` (a scheduled coordinator
crash, failed over as a clock's crash is) and ``slow`` (a scheduled slowdown of agents)."""

from __future__ import annotations

from typing import Any

import pytest

from kossim.config.experiment import validate_data
from kossim.config.loader import SourceMap
from kossim.errors import KossimInputError
from kossim.runspec import RunSpec
from kossim.sim import simulate, simulate_world

H, T, L = 1.0, 3.0, 0.1


def _config(standby: Any, timeline: list[dict[str, Any]], **policy: Any) -> dict[str, Any]:
    return {
        "name": "timeline-recovery",
        "horizon": 400.0,
        "warmup": 20.0,
        "scenario": {
            "agents": [{"group": "w", "count": 3}],
            "network": {"latency": {"dist": "constant", "value": L}},
            "workload": {
                "arrivals": {"process": "poisson", "rate": 2.0},
                "tasks": [{"type": "job", "work": {"dist": "exponential", "mean": 1.0}}],
            },
            "timeline": timeline,
        },
        "policies": [{"name": "p", "dispatch": "central", "standby": standby, **policy}],
    }


def _metrics(cfg: dict[str, Any], seed: int = 1) -> dict[str, float]:
    result = simulate(RunSpec.make(cfg, "p", (), seed))
    assert result.status == "ok", result.error
    return {m: v for m, s, v in result.metrics if s == "all"}


def test_a_killed_coordinator_without_standby_is_out_until_its_restart() -> None:
    """Nothing is dispatched from the kill to the restart: the outage is exactly that span."""
    m = _metrics(_config("none", [{"at": 100.5, "kind": "kill_coordinator", "until": 160.5}]))
    assert m["coordinator_failures"] == 1
    assert m["coordinator_outage"] == pytest.approx(60.0, abs=1e-9)
    assert m["failover_delayed"] > 0 and m["lost"] == 0


def test_a_hot_standby_takes_over_after_the_detection_delay() -> None:
    """The leader beats every H from time 0; the standby suspects T after the last beat
    reached it (L after it was sent): a kill at 100.5 is detected at 100 + L + T."""
    m = _metrics(
        _config(
            {"id": "hot", "heartbeat": H, "timeout": T},
            [{"at": 100.5, "kind": "kill_coordinator"}],
        )
    )
    assert m["coordinator_failures"] == m["failovers"] == 1
    assert m["coordinator_outage"] == pytest.approx(100.0 + L + T - 100.5, abs=1e-9)
    assert m["lost"] == 0


def test_a_coordinator_kill_is_in_the_log_and_the_timeline_marks() -> None:
    cfg = _config("none", [{"at": 50.5, "kind": "kill_coordinator", "until": 70.5}])
    result = simulate(RunSpec.make(cfg, "p", (), 3, trace=True))
    assert result.status == "ok", result.error
    assert result.events is not None
    kinds = list(result.events["kind"])
    assert "timeline:kill_coordinator" in kinds and "timeline:kill_coordinator:end" in kinds
    assert any(k.startswith("event:") for k in result.timeseries)


def test_a_coordinator_kill_needs_a_coordinator_that_can_fail_over() -> None:
    cfg = _config("none", [{"at": 5, "kind": "kill_coordinator"}])
    cfg["policies"][0].pop("standby")
    cfg["policies"][0]["coordinator"] = {"id": "contract_net", "window": 0.1}
    with pytest.raises(KossimInputError, match="the timeline kills the coordinator"):
        validate_data(cfg, SourceMap("x.yaml", {}, {}), "x.yaml")


def _constant(value: float) -> dict[str, Any]:
    return {"dist": "constant", "value": value}


def _slow_config(timeline: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "name": "slow",
        "tasks": 6,
        "scenario": {
            "agents": [{"group": "w", "count": 1}],
            "workload": {
                "arrivals": {
                    "process": "renewal",
                    "interarrival": {"dist": "constant", "value": 2},
                },
                "tasks": [{"type": "job", "work": _constant(1.0)}],
            },
            "timeline": timeline,
        },
        "policies": [{"name": "p", "dispatch": "central"}],
    }


def test_a_slow_event_stretches_service_for_its_span_only() -> None:
    """Tasks arrive at 2, 4, ..., 12, each work 1. Slowed x3 from 5.5 to 8.5: the task
    started at 6 runs at a third of the rate until 8.5 (0.833 done), then the rest (0.167)
    at full rate: it ends at 8.667; the others take 1."""
    _, cols = simulate_world(
        RunSpec.make(
            _slow_config([{"at": 5.5, "kind": "slow", "agents": ["w"], "factor": 3, "until": 8.5}]),
            "p",
            (),
            0,
        )
    )
    service = (cols["end"] - cols["start"]).tolist()
    assert service == pytest.approx([1.0, 1.0, 8.5 + (1 - 2.5 / 3) - 6.0, 1.0, 1.0, 1.0])


def test_a_slow_event_names_known_agents() -> None:
    cfg = _slow_config([{"at": 1, "kind": "slow", "agents": ["nobody"], "factor": 2}])
    with pytest.raises(KossimInputError, match="unknown agent or group 'nobody'"):
        validate_data(cfg, SourceMap("x.yaml", {}, {}), "x.yaml")
