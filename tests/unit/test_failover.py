"""Coordinator failover: the outage is the detection delay plus the take-over delay with
a standby, the coordinator's down time without one; tasks are delayed, never lost."""

from __future__ import annotations

import math
from typing import Any

import pytest

from kossim.config.experiment import load_experiment
from kossim.errors import KossimInputError
from kossim.runspec import RunSpec
from kossim.sim import simulate, simulate_world

UP, DOWN, H, T, L = 100.5, 50.0, 1.0, 3.0, 0.1
HORIZON, WARMUP = 1000.0, 60.0


def _config(standby: Any, latency: float = L, dispatch: str = "central") -> dict[str, Any]:
    return {
        "name": "failover",
        "horizon": HORIZON,
        "warmup": WARMUP,
        "scenario": {
            "agents": [{"group": "w", "count": 3}],
            "network": {"latency": {"dist": "constant", "value": latency}},
            "workload": {
                "arrivals": {"process": "poisson", "rate": 2.0},
                "tasks": [{"type": "job", "work": {"dist": "exponential", "mean": 1.0}}],
            },
            "failures": {
                "coordinator": {
                    "up": {"dist": "constant", "value": UP},
                    "down": {"dist": "constant", "value": DOWN},
                }
            },
        },
        "policies": [{"name": "p", "dispatch": dispatch, "standby": standby}],
    }


def _metrics(cfg: dict[str, Any], seed: int = 1) -> dict[str, float]:
    result = simulate(RunSpec.make(cfg, "p", (), seed))
    assert result.status == "ok", result.error
    return {m: v for m, s, v in result.metrics if s == "all"}


def _expected(startup: float) -> tuple[list[float], list[float]]:
    """Crash times and crash-to-suspicion delays of a ring of two with constant clocks.

    The leader beats every ``H`` from the moment it leads; the standby suspects ``T``
    after the last beat reached it (``L`` after it was sent) and leads ``startup`` later.
    The crashed coordinator is back (as the standby) ``DOWN`` after its crash and the
    next crash comes ``UP`` after that.
    """
    crashes, detections = [], []
    leads_from, crash = 0.0, UP
    while crash < HORIZON:
        last_beat = leads_from + H * math.floor((crash - leads_from) / H)
        if last_beat == crash:  # the crash is handled before a beat due at that instant
            last_beat -= H
        detect = last_beat + L + T - crash
        crashes.append(crash)
        detections.append(detect)
        leads_from = crash + detect + startup
        crash += DOWN + UP
    return crashes, detections


@pytest.mark.parametrize(
    ("standby", "startup"),
    [
        ({"id": "hot", "heartbeat": H, "timeout": T}, 0.0),
        ({"id": "cold", "heartbeat": H, "timeout": T, "startup": 7.0}, 7.0),
    ],
)
def test_outage_is_detection_plus_takeover(standby: dict[str, Any], startup: float) -> None:
    """With a standby, each outage lasts exactly the crash-to-suspicion delay (the beats'
    phase, latency and timeout) plus the start-up delay, summed within the window."""
    crashes, detections = _expected(startup)
    m = _metrics(_config(standby))
    spans = [(c, c + d + startup) for c, d in zip(crashes, detections, strict=True)]
    outage = sum(max(0.0, min(b, HORIZON) - max(a, WARMUP)) for a, b in spans)
    assert m["coordinator_failures"] == len(crashes) == 6
    assert m["coordinator_outage"] == pytest.approx(outage, abs=1e-9)
    assert m["failover_detection_mean"] == pytest.approx(sum(detections) / len(detections))
    assert m["takeover_time_mean"] == pytest.approx(sum(detections) / len(detections) + startup)
    assert m["failovers"] == m["takeovers"] == len(crashes)
    assert m["failover_false_suspicions"] == 0
    assert m["lost"] == 0


def test_outage_without_standby_is_the_down_time() -> None:
    """Without a standby nothing is dispatched until the coordinator is restarted: the
    outage is its down time, and its restarts are take-overs but no failovers."""
    m = _metrics(_config("none"))
    crashes = [UP + k * (UP + DOWN) for k in range(6)]
    outage = sum(max(0.0, min(c + DOWN, HORIZON) - max(c, WARMUP)) for c in crashes)
    assert m["coordinator_outage"] == pytest.approx(outage, abs=1e-9)
    assert m["takeover_time_mean"] == pytest.approx(DOWN)
    assert m["failovers"] == 0
    assert m["failover_delayed"] > 0 and m["failover_delay_mean"] > 0
    assert m["lost"] == 0


@pytest.mark.parametrize("dispatch", ["central", "push"])
def test_tasks_wait_at_the_entry_and_reach_the_new_leader(dispatch: str) -> None:
    """Tasks that waited at the crashed coordinator and arrivals during the outage are
    held at the entry and then served; the trace follows one across the failover."""
    cfg = _config({"id": "hot", "heartbeat": H, "timeout": T}, dispatch=dispatch)
    world, cols = simulate_world(RunSpec.make(cfg, "p", (), 1, trace=True))
    log = world.kernel.log
    assert log is not None
    kinds = {row[1] for row in log.rows}
    assert {"crash", "suspect", "takeover", "follow", "rebuild", "view_rebuilt"} <= kinds
    assert {"hold", "release", "restart"} <= kinds
    held = next(row for row in log.rows if row[1] == "hold")
    task = held[4]
    assert task is not None
    done = [row for row in log.rows if row[4] == task and row[1] == "route"]
    assert done and done[-1][0] > held[0]  # routed again after it was held
    assert world.failover is not None
    assert sorted(cols["id"].tolist()) == list(range(world.arrived))


def test_false_suspicions_resolve_to_one_leader() -> None:
    """A timeout shorter than the beat makes standbys suspect a live leader: two lead
    for a while; the lesser steps down and no task is lost or run twice."""
    cfg = _config({"id": "hot", "count": 2, "heartbeat": 2.0, "timeout": 1.0}, latency=0.3)
    world, cols = simulate_world(RunSpec.make(cfg, "p", (), 3, trace=True))
    assert world.failover is not None and len(world.failover.leading) <= 1 + 2
    log = world.kernel.log
    assert log is not None
    assert "step_down" in {row[1] for row in log.rows}
    m = _metrics(cfg, seed=3)
    assert m["failover_false_suspicions"] > 0
    assert m["lost"] == 0
    assert sorted(cols["id"].tolist()) == list(range(world.arrived))


def test_failover_runs_are_a_function_of_the_seed() -> None:
    """Same seed, same execution log and metrics, with jittery latency and two standbys."""
    cfg = _config({"id": "cold", "count": 2, "startup": 2.0})
    cfg["scenario"]["network"]["latency"] = {"dist": "exponential", "mean": 0.2}
    logs = [simulate_world(RunSpec.make(cfg, "p", (), 5, trace=True))[0].kernel.log for _ in "ab"]
    assert logs[0] is not None and logs[1] is not None
    assert logs[0].rows == logs[1].rows
    first, second = _metrics(cfg, 5), _metrics(cfg, 5)
    assert first.keys() == second.keys()
    for k, v in first.items():
        assert v == second[k] or (math.isnan(v) and math.isnan(second[k])), k


def test_only_coordinators_that_rebuild_from_reports_can_fail_over(tmp_path: Any) -> None:
    """A coordinator with state the agents cannot report fails at load, naming those that can."""
    text = """
name: x
horizon: 10
scenario:
  agents: [{group: w, count: 2}]
  workload:
    arrivals: {process: poisson, rate: 1.0}
    tasks: [{type: job, work: {dist: exponential, mean: 1.0}}]
  failures:
    coordinator: {up: {dist: exponential, mean: 5}, down: {dist: constant, value: 1}}
policies:
  - {name: p, coordinator: {id: contract_net, window: 0.3}}
"""
    path = tmp_path / "x.yaml"
    path.write_text(text)
    with pytest.raises(KossimInputError) as err:
        load_experiment(path)
    message = str(err.value)
    assert "cannot fail over" in message and "queueing" in message and "x.yaml:" in message


def test_failover_rows_are_the_documented_metrics() -> None:
    """Every run with failover reports each failover metric once, named as in the table."""
    from kossim.analysis.metrics import FAILOVER_METRICS

    result = simulate(RunSpec.make(_config("none"), "p", (), 1))
    names = [m for m, s, _ in result.metrics if m in FAILOVER_METRICS]
    assert names == list(FAILOVER_METRICS)


def test_the_readme_example_runs(tmp_path: Any) -> None:
    """The README's failover example validates and runs (shortened) with every policy."""
    import re
    from pathlib import Path

    from kossim.lab import run_experiment

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = next(
        b for b in re.findall(r"```yaml\n(.*?)```", readme, flags=re.S) if "failover-example" in b
    )
    path = tmp_path / "failover.yaml"
    path.write_text(block)
    loaded = load_experiment(path, ["seeds=1", "horizon=800"])
    outcome = run_experiment(loaded, tmp_path / "out", executor="serial", progress=False)
    assert outcome.n_failed == 0


def _spares(covers: list[str] | None, fail: bool = True) -> dict[str, Any]:
    cfg = _config({"id": "none", "agents": ["spare"], "covers": covers}, dispatch="push")
    cfg["policies"][0]["routing"] = "jsq"
    cfg["scenario"]["agents"] = [{"group": "w", "count": 3}, {"group": "spare", "count": 1}]
    cfg["scenario"]["workload"]["arrivals"]["rate"] = 2.4
    cfg["scenario"]["failures"] = {}
    if fail:
        cfg["scenario"]["failures"]["agents"] = {
            "up": {"dist": "exponential", "mean": 60.0},
            "down": {"dist": "constant", "value": 30.0},
            "on_failure": "resume",
            "only": ["w"],
        }
    return cfg


def _completed(cfg: dict[str, Any], agent: str) -> float:
    result = simulate(RunSpec.make(cfg, "p", (), 2))
    return next(v for m, s, v in result.metrics if m == "completed" and s == f"agent={agent}")


def test_standby_agents_get_no_work_while_nobody_fails() -> None:
    """A reserve agent is no candidate until an agent it covers is believed down."""
    cfg = _spares(None, fail=False)
    assert _completed(cfg, "spare-0") == 0
    assert _metrics(cfg, 2)["standby_takeovers"] == 0


def test_standby_agents_take_over_a_failed_agents_queue() -> None:
    """Under resume, the tasks queued at a failed agent would wait for its repair; a
    standby agent takes them over and serves until the agent is back."""
    covering, idle = _metrics(_spares(None), 2), _metrics(_spares([]), 2)
    assert covering["standby_takeovers"] > 0 and covering["standby_tasks_taken"] > 0
    assert _completed(_spares(None), "spare-0") > 0
    assert idle["standby_takeovers"] == 0 and _completed(_spares([]), "spare-0") == 0
    assert covering["sojourn_p99"] < idle["sojourn_p99"]
    assert covering["lost"] == idle["lost"] == 0
    world, cols = simulate_world(RunSpec.make(_spares(None), "p", (), 2, trace=True))
    log = world.kernel.log
    assert log is not None
    assert {"cover", "take_over", "uncover"} <= {row[1] for row in log.rows}
    assert sorted(cols["id"].tolist()) == list(range(world.arrived))
