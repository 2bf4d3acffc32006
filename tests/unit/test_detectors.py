"""Failure detection as a protocol: heartbeats, timeout and phi-accrual detectors, oracle."""

from __future__ import annotations

from typing import Any

import pytest

from kossim.runspec import RunSpec
from kossim.sim import simulate_world
from tests.unit.test_engine import config, constant, metrics


def _failing(detector: Any, up: float, down: float, latency: float, **kw: Any) -> dict[str, Any]:
    """One agent, failing at ``up``, ``2 up + down``, ...; tasks re-sent (requeue)."""
    return config(
        interarrival=0.5,
        work=0.1,
        network={"latency": constant(latency)},
        failures={"agents": {"up": constant(up), "down": constant(down), "on_failure": "requeue"}},
        policy={"dispatch": "central", "detector": detector},
        **kw,
    )


def test_oracle_reports_each_crash_after_the_detect_delay() -> None:
    """The oracle: every crash, only crashes, exactly ``detect`` later."""
    cfg = _failing("oracle", up=10.0, down=3.0, latency=0.1, horizon=60.0)
    cfg["scenario"]["failures"]["agents"]["detect"] = constant(0.7)
    m = metrics(cfg)
    assert m[("suspicions", "all")] == 4  # crashes at 10, 23, 36 and 49 (62 is past 60)
    assert m[("false_suspicions", "all")] == 0
    assert m[("detection_latency_mean", "all")] == pytest.approx(0.7)
    assert ("messages", "kind=heartbeat") not in m


def test_timeout_detector_suspects_a_crash_between_its_bounds() -> None:
    """Heartbeats every 1 with latency 0.25, timeout 2.5: the agent beats at phase p in
    (0, 1), so it last beats at most 1 before a crash at 10; the detector hears that beat
    0.25 later and suspects 2.5 after that: 1.75 < latency <= 2.75.
    """
    cfg = _failing(
        {"id": "timeout", "interval": 1.0, "timeout": 2.5},
        up=10.0,
        down=5.0,
        latency=0.25,
        horizon=14.0,
    )
    world, _ = simulate_world(RunSpec.make(cfg, "p", (), 0))
    (latency,) = world.ledger.detection_latencies
    assert 1.75 <= latency <= 2.75  # = phase + 1.75: the last beat was at phase + 9
    assert world.ledger.false_suspicions == 0
    assert world.kernel.counts()["heartbeat"] == 10  # at phase, phase + 1, ..., phase + 9


def test_timeout_shorter_than_the_heartbeat_interval_suspects_live_agents() -> None:
    """With timeout < interval every gap between two heartbeats is a false suspicion,
    withdrawn at the next heartbeat: the coordinator trusts the agent again."""
    cfg = config(
        interarrival=0.5,
        work=0.1,
        horizon=20.5,
        policy={
            "dispatch": "central",
            "detector": {"id": "timeout", "interval": 1.0, "timeout": 0.6},
        },
    )
    m = metrics(cfg)
    assert m[("false_suspicions", "all")] >= 18
    assert m[("completed", "all")] == 40  # suspected between beats, trusted at each beat


def test_phi_accrual_deadline_is_mean_plus_z_sd() -> None:
    """Steady heartbeats (no jitter): sd is the floor ``min_std``, so the agent is suspected
    ``interval + min_std * z`` after its last heartbeat, z the normal quantile of
    1 - 10^-threshold; phi at that silence is the threshold."""
    from statistics import NormalDist

    cfg = _failing(
        {"id": "phi_accrual", "interval": 1.0, "threshold": 3.0, "min_std": 0.2, "window": 2},
        up=30.0,
        down=10.0,
        latency=0.0,
        horizon=39.0,
    )
    world, _ = simulate_world(RunSpec.make(cfg, "p", (), 0))
    (latency,) = world.ledger.detection_latencies
    z = NormalDist().inv_cdf(1 - 1e-3)
    # the last heartbeat came at most 1 before the crash: latency in (limit - 1, limit]
    limit = 1.0 + 0.2 * z
    assert limit - 1.0 <= latency <= limit + 1e-9
    detector = world.detector
    assert detector.limit(0) == pytest.approx(limit)
    assert detector.phi(0, limit) == pytest.approx(3.0)
    assert world.ledger.false_suspicions == 0


def test_false_suspicions_under_requeue_make_counted_copies_and_lose_nothing() -> None:
    """A detector that suspects live agents re-sends their tasks: the copies race, each task
    is recorded once, and the copies and their wasted work are counted."""
    cfg = config(
        interarrival=0.3,
        work=1.0,
        horizon=200.0,
        agents=[{"group": "w", "count": 4}],
        network={"latency": {"dist": "exponential", "mean": 0.2}},
        failures={
            "agents": {
                "up": {"dist": "exponential", "mean": 50.0},
                "down": constant(2.0),
                "on_failure": "requeue",
            }
        },
        policy={
            "dispatch": "push",
            "routing": "jsq",
            "detector": {"id": "timeout", "interval": 0.5, "timeout": 0.8},
        },
    )
    world, cols = simulate_world(RunSpec.make(cfg, "p", (), 3))
    assert world.ledger.false_suspicions > 0
    assert world.ledger.duplicates > 0
    assert world.ledger.duplicate_work > 0
    assert cols["id"].tolist() == list(range(world.arrived))  # every task exactly once
    m = metrics(cfg, seed=3)
    assert m[("lost", "all")] == 0
    assert m[("duplicates", "all")] == world.ledger.duplicates


def test_behaviour_parameters_are_swept_and_set_like_any_other(tmp_path: Any) -> None:
    """A sweep over a detector's parameter, and a --set of another, reach the runs: a longer
    timeout detects later."""
    from kossim.config.experiment import load_experiment
    from kossim.lab import run_experiment
    from tests.unit.test_trace import HEARTBEATS

    loaded = load_experiment(
        HEARTBEATS,
        [
            "seeds=2",
            "horizon=400",
            "warmup=10",
            "expect=[]",
            "sweep={policies.timeout.detector.timeout: [1.0, 2.0]}",
            "policies.timeout.detector.interval=0.25",
        ],
    )
    outcome = run_experiment(loaded, tmp_path, executor="serial", progress=False)
    assert outcome.n_failed == 0
    import pandas as pd

    s = pd.read_csv(tmp_path / "summary.csv")
    col = "policies.timeout.detector.timeout"
    rows = s[(s.policy == "timeout") & (s.metric == "detection_latency_mean")].set_index(col)
    # a crash is seen timeout + latency - interval .. timeout + latency after it
    assert 0.75 <= rows.loc[1.0, "mean"] <= 1.0 + 0.5
    assert 1.75 <= rows.loc[2.0, "mean"] <= 2.0 + 0.5
