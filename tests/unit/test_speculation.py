"""Slow agents and speculative execution: exact service times under a slowdown, the
straggler detector's flags and backups, and the configuration mistakes refused at load."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kossim.config.experiment import load_experiment
from kossim.runspec import RunSpec
from kossim.sim import simulate, simulate_world
from tests.unit.test_engine import config, constant, run, trace


def slow_group(count: int = 1, speed: float = 1.0, **slowdown: Any) -> list[dict[str, Any]]:
    return [{"group": "w", "count": count, "speed": speed, "slowdown": slowdown}]


def test_a_task_started_on_a_slow_agent_takes_work_times_factor_over_speed() -> None:
    """Slowed for the whole run by 4 at speed 2: work 0.5 takes exactly 0.5 / (2 / 4)."""
    agents = slow_group(speed=2.0, factor=constant(4.0))
    cols = run(config(interarrival=2.0, work=0.5, tasks=3, agents=agents))
    assert trace(cols) == [(2.0, 2.0, 3.0), (4.0, 4.0, 5.0), (6.0, 6.0, 7.0)]


def test_a_draw_below_one_never_speeds_an_agent_up() -> None:
    """A factor drawn below 1 counts as 1 (the mean must be at least 1)."""
    agents = slow_group(factor={"dist": "uniform", "low": 0.5, "high": 1.5})
    cols = run(config(interarrival=2.0, work=0.5, tasks=20, agents=agents))
    service = cols["end"] - cols["start"]
    assert service.min() >= 0.5 - 1e-12 and service.max() <= 0.75 + 1e-12


def test_a_slowdown_mid_task_is_pro_rated() -> None:
    """Work 0.5 from time 1 at speed 1; slowed by 4 at 1.2 (0.2 done): the 0.3 left takes
    1.2, so it ends at 2.4."""
    agents = slow_group(factor=constant(4.0), every=constant(1.2), length=constant(100.0))
    cols = run(config(interarrival=1.0, work=0.5, tasks=1, agents=agents))
    ((arrival, start, end),) = trace(cols)
    assert (arrival, start) == (1.0, 1.0)
    assert end == pytest.approx(2.4, abs=1e-12)


def test_an_episode_that_ends_mid_task_restores_the_rate() -> None:
    """Slow by 4 from 1.2 to 1.6: 0.2 done, then 0.1, then 0.2 at full speed: ends at 1.8."""
    agents = slow_group(factor=constant(4.0), every=constant(1.2), length=constant(0.4))
    cols = run(config(interarrival=1.0, work=0.5, tasks=1, agents=agents))
    assert trace(cols)[0][2] == pytest.approx(1.8, abs=1e-12)


def test_agents_with_a_rate_hook_are_slowed_through_it() -> None:
    """Learning agents (a rate per task type) serve factor x slower too, also mid-task."""
    agents = slow_group(factor=constant(4.0), every=constant(2.2), length=constant(100.0))
    agents[0]["learning"] = {"cap": 1.0, "tau": 1.0}  # cap = p0: the rate never changes
    cols = run(config(interarrival=2.0, work=0.5, tasks=2, agents=agents))
    # 0.2 done by 2.2, the 0.3 left at 1/4: 3.4; the next, from 4.0, all slow: 6.0
    assert [e for _, _, e in trace(cols)] == pytest.approx([3.4, 6.0], abs=1e-12)


def test_only_the_share_of_the_group_is_slow() -> None:
    """share 0.25 of 4 agents: one agent serves 3x slower, the other three normally."""
    agents = [{"group": "w", "count": 4, "slowdown": {"share": 0.25, "factor": constant(3.0)}}]
    cfg = config(interarrival=0.3, work=1.0, tasks=200, agents=agents)
    cfg["policies"][0]["routing"] = "round_robin"
    cols = run(cfg)
    service = (cols["end"] - cols["start"]).round(9)
    assert sorted(set(service.tolist())) == [1.0, 3.0]
    slow = {int(a) for a, s in zip(cols["agent"], service, strict=True) if s == 3.0}
    assert len(slow) == 1


def test_slow_agents_are_logged_with_their_factor() -> None:
    agents = slow_group(factor=constant(4.0), every=constant(1.2), length=constant(0.4))
    cfg = config(interarrival=1.0, work=0.5, tasks=2, agents=agents)
    events = simulate(RunSpec.make(cfg, "p", (), 0, trace=True)).events
    assert events is not None
    rows = [(k, r) for k, r in zip(events["kind"], events["reason"], strict=True)]
    assert ("slow", "w-0 serves 4x slower for 0.4") in rows
    assert ("restore", "w-0 serves at its normal rate again") in rows


# -- speculation ---------------------------------------------------------------------


def speculating(**params: Any) -> dict[str, Any]:
    """Six agents, one 10x slow; constant work 2 every 0.5: its tasks straggle."""
    agents = [{"group": "w", "count": 6, "slowdown": {"share": 1 / 6, "factor": constant(10.0)}}]
    cfg = config(interarrival=0.5, work=2.0, horizon=200.0, agents=agents)
    cfg["scenario"]["network"] = {"latency": constant(0.01)}
    spec = {"id": "backup", "interval": 0.5, "threshold": 0.5, "min_elapsed": 1.0, **params}
    cfg["policies"] = [
        {"name": "p", "dispatch": "central", "speculation": spec},
        {"name": "off", "dispatch": "central"},
    ]
    return cfg


def test_stragglers_get_backups_that_win_and_the_losers_are_counted() -> None:
    """Every task on the slow agent is flagged and backed up; the backup finishes first;
    the cancelled original's service time is duplicate work; nothing is lost."""
    cfg = speculating()
    result = simulate(RunSpec.make(cfg, "p", (), 1, trace=True))
    assert result.status == "ok", result.error
    m = {(k, s): v for k, s, v in result.metrics}
    assert m[("lost", "all")] == 0
    assert m[("backups", "all")] > 5
    # 10x slow never catches up: every backup wins but one still running at the horizon
    assert m[("backup_wins", "all")] == m[("backups", "all")] - 1
    assert m[("stragglers_flagged", "all")] >= m[("backups", "all")]
    assert m[("duplicates", "all")] == m[("backups", "all")]
    assert m[("duplicate_work", "all")] > 0
    assert m[("messages", "kind=progress")] > 0
    events = result.events
    assert events is not None
    kinds = list(events["kind"])
    assert "straggler" in kinds and "backup" in kinds
    why = next(r for k, r in zip(kinds, events["reason"], strict=True) if k == "straggler")
    assert "progress rate" in why and "< 0.5 x median" in why
    off = simulate(RunSpec.make(cfg, "off", (), 1))
    o = {(k, s): v for k, s, v in off.metrics}
    assert ("backups", "all") not in o and ("messages", "kind=progress") not in o
    assert m[("sojourn_p99", "all")] < o[("sojourn_p99", "all")]


def _backups_running(max_share: float) -> tuple[int, list[str]]:
    """Three of six agents 10x slow: the most backups running at once, and the reasons
    given for declining one."""
    cfg = speculating(max_share=max_share)
    cfg["scenario"]["agents"][0]["slowdown"]["share"] = 0.5
    cfg["scenario"]["workload"]["arrivals"]["interarrival"] = constant(1.0)
    world, cols = simulate_world(RunSpec.make(cfg, "p", (), 3, trace=True))
    (detector,) = [s.behaviour for s in world.services]
    log = world.kernel.log
    assert log is not None
    launched = {row[2]: row[0] for row in log.rows if row[1] == "backup"}  # task -> when
    assert len(launched) == len(detector.copies)  # max_backups 1: one per task, ever
    # A copy runs until its task ends (it wins then, or is cancelled).
    ends = dict(zip(cols["id"].tolist(), cols["end"].tolist(), strict=True))
    spans = [(launched[c.id], ends[c.id] if ends[c.id] >= 0 else 1e9) for c in detector.copies]
    most = max(sum(1 for a, b in spans if a <= t < b) for t, _ in spans)
    declined = [row[6] for row in log.rows if row[1] == "no_backup"]
    return most, declined


def test_max_share_bounds_the_backups_running_at_once() -> None:
    """max_share 0.01 of 6 agents rounds up to one backup at a time; 1.0 allows more."""
    most, declined = _backups_running(0.01)
    assert most == 1
    assert any("max_share 0.01" in why for why in declined)
    assert _backups_running(1.0)[0] > 1


def test_a_backup_never_goes_to_the_straggler_s_agent() -> None:
    """Every backup runs on another agent than the slow one its original straggled on."""
    world, _ = simulate_world(RunSpec.make(speculating(), "p", (), 2))
    slow = next(a.index for a in world.agents if a.factor > 1)  # type: ignore[attr-defined]
    (detector,) = [s.behaviour for s in world.services]
    assert detector.copies
    assert all(c.agent not in (slow, -1) for c in detector.copies)


@pytest.mark.parametrize(
    ("policy", "says"),
    [
        ({"coordinator": {"id": "contract_net", "window": 0.3}}, "cannot launch backup copies"),
        ({"coordinator": "bundles"}, "speculation needs one of: queueing"),
        ({"agent": "delegating"}, ""),
    ],
)
def test_coordinators_that_cannot_back_up_are_refused(
    policy: dict[str, Any], says: str, write_experiment: Callable[..., Path]
) -> None:
    cfg = config(tasks=5)
    cfg["policies"] = [{"name": "p", "speculation": "backup", **policy}]
    if policy.get("agent") == "delegating":  # a worker subclass: it reports progress
        load_experiment(write_experiment(cfg))
        return
    with pytest.raises(Exception) as err:
        load_experiment(write_experiment(cfg))
    assert "policies.0.speculation" in str(err.value) and says in str(err.value)


@pytest.mark.parametrize(
    ("slowdown", "says"),
    [
        ({"factor": constant(4.0), "every": constant(1.0)}, "need both 'every'"),
        ({"factor": constant(0.5)}, "at least 1"),
        ({"factor": constant(2.0), "share": 1.5}, "share"),
    ],
)
def test_slowdown_mistakes_are_located(
    slowdown: dict[str, Any], says: str, write_experiment: Callable[..., Path]
) -> None:
    cfg = config(tasks=5, agents=[{"group": "w", "slowdown": slowdown}])
    with pytest.raises(Exception) as err:
        load_experiment(write_experiment(cfg))
    assert "scenario.agents.0.slowdown" in str(err.value) and says in str(err.value)


def test_the_readme_example_runs(tmp_path: Path) -> None:
    """The README's speculation example runs and measures backups against the baseline."""
    import re

    from kossim.lab import run_experiment

    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = re.search(r"```yaml\n(name: speculation-example\n.*?)```", text, re.S)
    assert block is not None
    path = tmp_path / "speculation-example.yaml"
    path.write_text(block.group(1))
    outcome = run_experiment(
        load_experiment(path), tmp_path / "out", executor="serial", progress=False
    )
    assert outcome.n_failed == 0
    import pandas as pd

    rows = pd.read_csv(tmp_path / "out" / "metrics.csv")
    backups = rows[(rows.metric == "backups") & (rows.policy == "backup")]["value"]
    assert len(backups) == 2 and (backups > 0).all()


def test_an_agent_whose_watch_request_was_cut_off_is_asked_again() -> None:
    """Every agent is cut off while the watcher subscribes at time 0 (healed at 0.2, before
    the first arrival): every ``watch`` is dropped. Asked again ``RESUBSCRIBE`` intervals
    later, the agents report and the slow one's stragglers are backed up as before."""
    from policies.speculation import RESUBSCRIBE

    cfg = speculating()
    cfg["scenario"]["timeline"] = [
        {"at": 0, "kind": "partition", "groups": [["w"]], "until": 0.2},
    ]
    result = simulate(RunSpec.make(cfg, "p", (), 1, trace=True))
    assert result.status == "ok", result.error
    events = result.events
    assert events is not None
    sent = [
        (t, dst)
        for t, k, dst in zip(events["time"], events["kind"], events["dst"], strict=True)
        if k == "send:watch"
    ]
    first = {dst for t, dst in sent if t == 0.0}
    again = {dst for t, dst in sent if t == pytest.approx(RESUBSCRIBE * 0.5)}
    assert len(first) == 6 and again == first  # all six were cut off, all asked again
    m = {(k, s): v for k, s, v in result.metrics}
    assert m[("backups", "all")] > 5 and m[("lost", "all")] == 0
