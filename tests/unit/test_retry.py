"""Retry queues: backoff with jitter, dead letters, delivery semantics, attempt timeouts."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest

from kossim.config.models import Experiment
from kossim.conformance_actors import check_behaviour
from kossim.errors import FieldError
from kossim.registry import build, resolve
from kossim.runspec import RunSpec
from kossim.sim import simulate, simulate_world
from kossim.sim.task import ABANDONED, DONE
from policies.retry import backoff_delay
from policies.retry_queue import peak_rate


def test_backoff_follows_the_jitter_formulas() -> None:
    """For the k-th retry, t = min(cap, base * multiplier**(k-1)); the draw u places it."""
    base, cap, m = 0.5, 6.0, 2.0
    for k, t in ((1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 6.0), (60, 6.0), (10**6, 6.0)):
        assert backoff_delay("none", k, 0.0, base, cap, m, 0.3) == t
        assert backoff_delay("full", k, 0.0, base, cap, m, 0.3) == pytest.approx(0.3 * t)
        equal = backoff_delay("equal", k, 0.0, base, cap, m, 0.3)
        assert equal == pytest.approx(t / 2 + 0.3 * t / 2)
    # decorrelated: uniform on [base, 3 * previous] (previous = base at first), capped
    assert backoff_delay("decorrelated", 1, 0.0, base, cap, m, 0.0) == base
    assert backoff_delay("decorrelated", 1, 0.0, base, cap, m, 0.5) == pytest.approx(1.0)
    assert backoff_delay("decorrelated", 3, 1.5, base, cap, m, 0.5) == pytest.approx(2.5)
    assert backoff_delay("decorrelated", 9, 5.0, base, cap, m, 0.99) == cap


@pytest.mark.parametrize("jitter", ["none", "full", "equal", "decorrelated"])
def test_backoff_delays_lie_within_zero_and_the_cap(jitter: str) -> None:
    """Whatever the retry number and the draw, a delay is in [0, cap]; drawn from the
    component's own stream, the same seed gives the same delays."""
    spec = resolve("retry", {"id": "backoff", "base": 0.2, "cap": 3.0, "jitter": jitter})

    def delays(seed: int) -> list[float]:
        retry = build(spec, np.random.default_rng(seed))
        out, previous = [], 0.0
        for k in range(1, 400):
            previous = retry.delay(k % 40 + 1, previous)
            out.append(previous)
        return out

    got = delays(7)
    assert all(0.0 <= d <= 3.0 for d in got)
    assert got == delays(7)
    if jitter != "none":
        assert len(set(got)) > 100  # jittered: spread out, not a few fixed values


def test_immediate_retries_at_once() -> None:
    retry = build(resolve("retry", "immediate"), np.random.default_rng(0))
    assert [retry.delay(k, 1.0) for k in (1, 2, 9)] == [0.0, 0.0, 0.0]


def test_bad_parameters_are_refused() -> None:
    """A cap below the base, and a timeout with at-most-once, are refused with the reason."""
    with pytest.raises((FieldError, ValueError), match=r"cap 0\.5 is below base 1"):
        resolve("retry", {"id": "backoff", "base": 1.0, "cap": 0.5})
    with pytest.raises((FieldError, ValueError), match="at_most_once never re-sends"):
        resolve("retry", {"id": "immediate", "delivery": "at_most_once", "timeout": 1.0})
    with pytest.raises(ValueError, match="did you mean 'backoff'"):
        resolve("retry", "backof")


def test_peak_rate_is_the_busiest_window() -> None:
    assert peak_rate([], 1.0) == 0.0
    assert peak_rate([0.0, 0.5, 0.9, 2.0, 2.1], 1.0) == 3.0
    assert peak_rate([0.0, 1.0, 2.0], 1.0) == 1.0  # a window is half-open: (t - w, t]
    assert peak_rate([0.0, 0.1, 5.0], 2.0) == 1.0


def _outage(retry: dict[str, Any] | None, **more: Any) -> dict[str, Any]:
    """Four agents on one node that is down from time 5 to 25 (detected after 1), one spare
    agent elsewhere; a task every 0.5 of work 1, lost with the node (requeue)."""
    policy: dict[str, Any] = {"name": "p", "dispatch": "push", "routing": "round_robin"}
    if retry is not None:
        policy["retry"] = retry
    return {
        "name": "outage",
        "horizon": 60.0,
        "scenario": {
            "nodes": [{"name": "rack"}, {"name": "spare"}],
            "agents": [
                {"group": "rack", "count": 4, "node": "rack"},
                {"group": "spare", "count": 1, "node": "spare"},
            ],
            "network": {"latency": {"dist": "constant", "value": 0.05}},
            "workload": {
                "arrivals": {
                    "process": "renewal",
                    "interarrival": {"dist": "constant", "value": 0.5},
                },
                "tasks": [{"type": "job", "work": {"dist": "constant", "value": 1.0}}],
            },
            "failures": {
                "nodes": {
                    "up": {"dist": "constant", "value": 5.0},
                    "down": {"dist": "constant", "value": 20.0},
                    "on_failure": "requeue",
                    "detect": {"dist": "constant", "value": 1.0},
                    "only": ["rack"],
                    **more,
                }
            },
        },
        "policies": [policy],
    }


def _run(cfg: dict[str, Any]) -> tuple[dict[tuple[str, str], float], list[tuple[Any, ...]], Any]:
    spec = RunSpec.make(cfg, "p", (), 0, trace=True)
    world, cols = simulate_world(spec)
    result = simulate(spec)
    assert result.status == "ok", result.error
    metrics = {(name, scope): v for name, scope, v in result.metrics}
    assert metrics[("lost", "all")] == 0
    assert world.kernel.log is not None
    return metrics, world.kernel.log.rows, cols


def test_without_a_retry_component_nothing_is_swapped_in() -> None:
    """The default path pays nothing: the coordinator keeps its own attempt_failed, held,
    _send, and reports no retry metric."""
    world, _ = simulate_world(RunSpec.make(_outage(None), "p", (), 0))
    swapped = {"attempt_failed", "held", "_send", "metric_rows", "on_retry_due"}
    assert not swapped & set(vars(world.coordinator))
    metrics = {name for name, _, _ in simulate(RunSpec.make(_outage(None), "p", (), 0)).metrics}
    assert "retry_sends" not in metrics and "dead_lettered" not in metrics


def test_out_of_attempts_tasks_are_dead_lettered_with_their_reason() -> None:
    """Immediate retries against a node that stays down use the attempts up at once:
    abandoned, reason dead_letter, counted in abandoned; the log shows each task's life."""
    metrics, rows, cols = _run(_outage({"id": "immediate", "max_attempts": 2}))
    assert metrics[("dead_lettered", "all")] > 0
    assert metrics[("abandoned", "all")] == metrics[("dead_lettered", "all")]
    dead = [r for r in rows if r[1] == "dead_letter"]
    assert len(dead) == metrics[("dead_lettered", "all")]
    task = dead[0][2]
    assert cols["state"][task] == ABANDONED
    life = [r[1] for r in rows if r[2] == task and not r[1].startswith("send:")]
    assert life.index("retry") < life.index("dead_letter")
    assert "attempt 2 of 2" in dead[0][6]


def test_backoff_outlasts_the_outage_where_immediate_retry_gives_out() -> None:
    """With the same attempts, retries spread by backoff wait out the outage: fewer dead
    letters (fewer tasks abandoned), fewer retries, a lower retry peak."""
    immediate, _, _ = _run(_outage({"id": "immediate", "max_attempts": 3}))
    backoff, rows, _ = _run(
        _outage({"id": "backoff", "max_attempts": 3, "base": 4.0, "cap": 30.0, "jitter": "none"})
    )
    assert backoff[("dead_lettered", "all")] < immediate[("dead_lettered", "all")]
    assert backoff[("abandoned", "all")] < immediate[("abandoned", "all")]
    assert backoff[("retry_sends", "all")] < immediate[("retry_sends", "all")]
    assert backoff[("retry_rate_peak", "all")] < immediate[("retry_rate_peak", "all")]
    delays = [json.loads(r[7])["delay"] for r in rows if r[1] == "retry"]
    assert set(delays) <= {4.0, 8.0}  # no jitter: base, then base * 2


def test_at_most_once_gives_lost_attempts_up_and_makes_no_copy() -> None:
    """A task lost with the node may have run: at-most-once gives it up (abandoned, reason
    given_up) and never copies; a bounce (never delivered) is still retried."""
    metrics, rows, _ = _run(_outage({"id": "immediate", "delivery": "at_most_once"}))
    assert metrics[("given_up", "all")] > 0
    assert metrics[("abandoned", "all")] == metrics[("given_up", "all")]
    assert metrics[("duplicates", "all")] == 0
    assert metrics[("dead_lettered", "all")] == 0
    assert any(r[1] == "give_up" for r in rows)
    kinds = {json.loads(r[7])["why"] for r in rows if r[1] == "retry"}
    assert kinds <= {"bounced"}


def test_a_timed_out_attempt_is_copied_and_the_first_copy_wins() -> None:
    """Resume keeps tasks on the down node until it is back; a timeout re-sends them (copies:
    they may still run there). Each task ends once; the copies are counted."""
    cfg = _outage({"id": "backoff", "base": 0.5, "cap": 2.0, "timeout": 3.0, "max_attempts": 10})
    cfg["scenario"]["failures"]["nodes"]["on_failure"] = "resume"
    metrics, rows, cols = _run(cfg)
    assert metrics[("attempt_failures", "reason=timeout")] > 0
    assert metrics[("duplicates", "all")] > 0
    assert any(r[1] == "timeout" for r in rows)
    assert sorted(cols["id"].tolist()) == list(range(len(cols["id"])))
    plain = _outage(None)
    plain["scenario"]["failures"]["nodes"]["on_failure"] = "resume"
    without, _, _ = _run(plain)
    done = cols["state"] == DONE
    # The tasks stranded on the down node finish on the spare instead of after the repair.
    assert metrics[("sojourn_p99", "all")] < without[("sojourn_p99", "all")]
    assert done.sum() >= without[("completed", "all")]


@pytest.mark.parametrize(
    "ref",
    [
        {"id": "backoff", "base": 0.3, "cap": 3.0, "timeout": 1.5, "jitter": "decorrelated"},
        {"id": "immediate", "delivery": "at_most_once", "max_attempts": 2},
    ],
)
def test_retry_with_timeouts_and_at_most_once_conform(ref: dict[str, Any]) -> None:
    """The conformance worlds with timeouts (copies) and with at-most-once (give-ups)."""
    assert check_behaviour("retry", ref) == []


def test_goodput_counts_completions_by_the_deadline() -> None:
    """goodput = tasks completed by their deadline per unit time (all, without deadlines)."""
    cfg = _outage(None)
    tasks = cfg["scenario"]["workload"]["tasks"]
    metrics, _, _ = _run(cfg)
    assert metrics[("goodput", "all")] == metrics[("throughput", "all")]
    tasks[0]["deadline"] = {"dist": "constant", "value": 2.0}
    late, _, _ = _run(cfg)
    assert 0 < late[("goodput", "all")] < late[("throughput", "all")]
    assert not math.isnan(late[("deadline_miss_rate", "all")])


@pytest.mark.parametrize(
    "more",
    [
        {"dispatch": "central"},
        {"coordinator": {"id": "contract_net", "window": 0.3}},
        {"coordinator": "trust_gated"},
        {"agent": "delegating"},
    ],
    ids=["central", "contract_net", "trust_gated", "delegating"],
)
def test_the_queueing_family_consults_the_retry_component(more: dict[str, Any]) -> None:
    """Every coordinator built on ``queueing`` retries through the component; nothing lost."""
    cfg = _outage({"id": "backoff", "base": 0.5, "cap": 4.0, "timeout": 2.0})
    cfg["policies"][0].update(more)
    metrics, rows, _ = _run(cfg)
    assert metrics[("attempt_failures", "reason=timeout")] > 0
    assert (
        metrics[("attempt_failures", "reason=lost")]
        + metrics[("attempt_failures", "reason=bounced")]
        > 0
    )
    assert any(r[1] == "retry" for r in rows)


def test_a_coordinator_that_never_consults_retry_refuses_it() -> None:
    """A tree coordinator has no retry queue: naming one is refused at load, at the field."""
    cfg = _outage({"id": "immediate"})
    cfg["policies"][0]["coordinator"] = "tree"
    with pytest.raises(ValueError, match="coordinator 'tree' never consults a retry component"):
        Experiment.model_validate(cfg)
