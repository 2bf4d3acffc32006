"""Arbitration in runs: the events the coordinators and agents raise, and the decisions
they carry out (failed attempts, deadlines at risk, auctions without bids), user
arbiters named ``module:function``, and the README's example."""

from __future__ import annotations

import itertools
import json
import math
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from kossim.arbiter import Decision, Event, wait
from kossim.runspec import RunSpec
from kossim.sim import simulate, simulate_world
from kossim.sim.task import ABANDONED

ROOT = Path(__file__).resolve().parents[2]


def _failing(**policy: Any) -> dict[str, Any]:
    """Four agents that fail often and lose their tasks (requeue), at 80 % load."""
    return {
        "name": "arb",
        "horizon": 300.0,
        "scenario": {
            "agents": [{"group": "w", "count": 4}],
            "workload": {
                "arrivals": {"process": "poisson", "rate": 3.2},
                "tasks": [{"type": "job", "work": {"dist": "exponential", "mean": 1.0}}],
            },
            "failures": {
                "agents": {
                    "up": {"dist": "exponential", "mean": 8.0},
                    "down": {"dist": "exponential", "mean": 1.0},
                    "on_failure": "requeue",
                    "max_attempts": 5,
                }
            },
        },
        "policies": [{"name": "p", "dispatch": "central", **policy}],
    }


def _metrics(cfg: dict[str, Any], seed: int = 1) -> dict[tuple[str, str], float]:
    result = simulate(RunSpec.make(cfg, "p", (), seed))
    assert result.status == "ok", result.error
    return {(m, s): v for m, s, v in result.metrics}


def test_without_an_arbiter_nothing_changes() -> None:
    """No arbiter: no arbitration rows; ``always_wait`` decides the same as none."""
    plain = _metrics(_failing())
    waiting = _metrics(_failing(arbiter="always_wait"))
    assert not any(m.startswith("arbit") for m, _ in plain)
    assert all(
        waiting[k] == v or (math.isnan(v) and math.isnan(waiting[k])) for k, v in plain.items()
    )
    assert waiting[("arbitrations", "event=failed")] > 0
    assert waiting[("arbitrations", "decision=wait")] == waiting[("arbitrations", "all")]
    assert waiting[("arbitrations", "event=lock_contended")] == 0  # every kind has its row


def test_a_user_function_is_asked_about_failures_and_its_abort_applied(tmp_path: Path) -> None:
    """A ``module:function`` arbiter beside the experiment sees each failed attempt with its
    facts; the tasks it aborts end abandoned, and each arbitration is in the log."""
    (tmp_path / "my_judge.py").write_text(
        textwrap.dedent(
            """
            from kossim.arbiter import abort, wait

            SEEN = []

            def judge(event):
                SEEN.append(event)
                if event.count >= 2:
                    return abort(f"failed {event['count']} times on {event['agent']}")
                return wait("one more try")
            """
        )
    )
    sys.path.insert(0, str(tmp_path))
    try:
        cfg = _failing(arbiter="my_judge:judge")
        world, cols = simulate_world(RunSpec.make(cfg, "p", (), 3, trace=True))
        import my_judge  # type: ignore[import-not-found]

        seen = my_judge.SEEN
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("my_judge", None)
    assert seen and {e.kind for e in seen} == {"failed"}
    assert all(e.count == e.attempts >= 1 and e["max_attempts"] == 5 for e in seen)
    assert all(e["agent"].startswith("w-") and e.by == "coordinator" for e in seen)
    aborted = {e.task for e in seen if e.count >= 2}
    assert aborted, "no task failed twice: the scenario is too kind"
    state = dict(zip(cols["id"].tolist(), cols["state"].tolist(), strict=True))
    assert all(state[t] == ABANDONED for t in aborted)
    assert {t for t, s in state.items() if s == ABANDONED} == aborted
    assert world.kernel.log is not None
    rows = [r for r in world.kernel.log.rows if r[1] == "arbitrate"]
    assert len(rows) == len(seen)
    assert {r[2] for r in rows if '"decision": "abort"' in r[7]} == aborted
    assert any("abort (failed 2 times on w-" in r[6] for r in rows)


def _deadlines(arbiter: Any, rate: float = 7.0) -> dict[str, Any]:
    """Eight agents near saturation, each task due 6 after it arrives, priority queue."""
    return {
        "name": "deadlines",
        "horizon": 400.0,
        "warmup": 20.0,
        "scenario": {
            "agents": [{"group": "w", "count": 8}],
            "workload": {
                "arrivals": {"process": "poisson", "rate": rate},
                "tasks": [
                    {
                        "type": "job",
                        "work": {"dist": "exponential", "mean": 1.0},
                        "deadline": {"dist": "constant", "value": 6.0},
                    }
                ],
            },
            "failures": {
                "agents": {
                    "up": {"dist": "exponential", "mean": 50.0},
                    "down": {"dist": "exponential", "mean": 5.0},
                    "on_failure": "requeue",
                }
            },
        },
        "policies": [{"name": "p", "dispatch": "central", "queue": "priority", "arbiter": arbiter}],
    }


def test_deadline_guard_aborts_only_hopeless_waiting_tasks() -> None:
    """Each ``deadline_risk`` abort is of a task still waiting whose slack was <= 0: it
    could not have made its deadline even if served at once."""
    world, cols = simulate_world(RunSpec.make(_deadlines("deadline_guard"), "p", (), 2, True))
    assert world.kernel.log is not None
    rows = [r for r in world.kernel.log.rows if r[1] == "arbitrate"]
    risky = [(r, json.loads(r[7])) for r in rows if '"event": "deadline_risk"' in r[7]]
    aborts = [(r, f) for r, f in risky if f["decision"] == "abort"]
    escalations = [(r, f) for r, f in risky if f["decision"] == "escalate"]
    assert aborts and escalations
    assert all(f["slack"] <= 0 for _, f in aborts)
    assert all(0 < f["slack"] < 1.0 + 1e-9 for _, f in escalations)
    state = dict(zip(cols["id"].tolist(), cols["state"].tolist(), strict=True))
    assert all(state[r[2]] == ABANDONED for r, _ in aborts)
    ended = {(r[2], r[0]) for r in world.kernel.log.rows if r[1] == "abandon"}
    assert all((r[2], r[0]) in ended for r, _ in aborts), "abandoned when aborted"


def test_deadline_guard_cuts_deadline_misses() -> None:
    """Near saturation, abandoning hopeless tasks and escalating those at risk leaves fewer
    misses than waiting (seed 2; the paired experiment pins it over seeds)."""
    guard = _metrics(_deadlines("deadline_guard"), 2)
    waiting = _metrics(_deadlines({"id": "always_wait", "risk_slack": 1.0}), 2)
    assert guard[("deadline_miss_rate", "all")] < waiting[("deadline_miss_rate", "all")]
    assert guard[("arbiter_aborts", "all")] > 0 and waiting[("arbiter_aborts", "all")] == 0
    assert waiting[("arbitrations", "event=deadline_risk")] > 0
    assert guard[("lost", "all")] == waiting[("lost", "all")] == 0


def test_wait_with_recheck_asks_again() -> None:
    """A ``wait`` with ``recheck`` is asked again about the same waiting task after it (a
    task that left the queue meanwhile and came back is asked when it is at risk again)."""
    world, _ = simulate_world(
        RunSpec.make(
            _deadlines({"id": "tests.unit.test_arbitrated:recheck", "risk_slack": 1.0}, rate=7.6),
            "p",
            (),
            1,
            True,
        )
    )
    assert world.kernel.log is not None
    asks: dict[int, list[float]] = {}
    for r in world.kernel.log.rows:
        if r[1] == "arbitrate" and '"deadline_risk"' in r[7]:
            asks.setdefault(r[2], []).append(r[0])
    gaps = [b - a for times in asks.values() for a, b in itertools.pairwise(times)]
    assert gaps and all(g > 0.5 - 1e-9 for g in gaps)  # longer: it left the queue meanwhile
    assert sum(math.isclose(g, 0.5) for g in gaps) > 0.9 * len(gaps)


def recheck(ev: Event) -> Decision:
    """Ask again every 0.5."""
    return wait("look again", recheck=0.5)


def test_contract_net_asks_about_auctions_without_bids() -> None:
    """Bids that cannot come back within the window: each empty auction is a ``no_bids``
    event; ``abort_after`` abandons the task at its second."""
    cfg = _failing(
        coordinator={"id": "contract_net", "window": 0.05},
        arbiter={"id": "abort_after", "k": 2},
    )
    cfg["scenario"]["network"] = {"latency": {"dist": "constant", "value": 0.2}}
    m = _metrics(cfg)
    assert m[("arbitrations", "event=no_bids")] > 0
    assert m[("arbiter_aborts", "all")] > 0
    assert m[("abandoned", "all")] > 0 and m[("lost", "all")] == 0


def test_reassign_on_no_bids_awards_without_an_auction() -> None:
    """``reassign`` on ``no_bids`` sends the task to the shortest queue: nothing abandoned,
    tasks complete although no bid ever arrives in time."""
    cfg = _failing(
        coordinator={"id": "contract_net", "window": 0.05},
        arbiter="tests.unit.test_arbitrated:hand_over",
    )
    cfg["scenario"]["network"] = {"latency": {"dist": "constant", "value": 0.2}}
    m = _metrics(cfg)
    assert m[("arbitrations", "decision=reassign")] == m[("arbitrations", "all")]
    assert m[("arbitrations", "event=no_bids")] > 0
    assert m[("arbiter_reassigns", "all")] > 0
    assert m[("completed", "all")] > 0 and m[("lost", "all")] == 0


def hand_over(ev: Event) -> Decision:
    """Reassign whatever happens."""
    return Decision("reassign", "hand it over")


def test_a_bad_answer_fails_the_run_with_a_clear_message() -> None:
    """An arbiter that returns something other than a decision fails the run, named."""
    result = simulate(
        RunSpec.make(_failing(arbiter="tests.unit.test_arbitrated:confused"), "p", (), 1)
    )
    assert result.status == "failed"
    assert "answered 'maybe'" in (result.error or "")


def confused(ev: Event) -> Any:
    """Not a decision."""
    return "maybe"


@pytest.mark.parametrize("dispatch", ["central", "push"])
def test_restart_failures_are_arbitrated_at_the_agent(dispatch: str) -> None:
    """``restart``: the agent asks at the repair about each suspended task; ``reassign``
    sends it back to the coordinator, which dispatches it anew; ``abort`` abandons it."""
    for arbiter, acted in (
        ("tests.unit.test_arbitrated:hand_over", "reassign"),
        ("abort_after", "abort"),
    ):
        cfg = _failing(arbiter={"id": arbiter, **({"k": 1} if acted == "abort" else {})})
        cfg["scenario"]["failures"]["agents"]["on_failure"] = "restart"
        cfg["policies"][0]["dispatch"] = dispatch
        world, cols = simulate_world(RunSpec.make(cfg, "p", (), 4, trace=True))
        assert world.kernel.log is not None
        rows = [
            r for r in world.kernel.log.rows if r[1] == "arbitrate" and '"event": "failed"' in r[7]
        ]  # (the coordinator also asks about the tasks of agents it suspects)
        assert rows and all(
            r[3].startswith("w-") and f'"decision": "{acted}"' in r[7] for r in rows
        )
        state = dict(zip(cols["id"].tolist(), cols["state"].tolist(), strict=True))
        asked = {r[2] for r in rows}
        if acted == "abort":
            assert {t for t, s in state.items() if s == ABANDONED} == asked
        else:
            assert ABANDONED not in state.values()
        m = _metrics(cfg, 4)
        assert m[("lost", "all")] == 0 and m[("arbitrations", "event=failed")] > 0


def test_the_readme_arbiter_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's ``my_arbiters.py`` beside an experiment, named as its YAML says: it
    validates, runs on the arbitration experiment's scenario, and its aborts and
    escalations are applied."""
    import re

    from kossim.config.experiment import load_experiment
    from kossim.config.loader import load_yaml_text
    from kossim.lab import run_experiment

    readme = (ROOT / "README.md").read_text()
    code = next(b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "my_arbiters" in b)
    policies = next(
        b for b in re.findall(r"```yaml\n(.*?)```", readme, re.S) if "my_arbiters:" in b
    )
    (tmp_path / "my_arbiters.py").write_text(code)
    data, _ = load_yaml_text((ROOT / "experiments/recovery/arbitration.yaml").read_text())
    part, _ = load_yaml_text(policies)
    data.update(part, expect=[{"metric": "lost", "max": 0}])
    data.pop("sweep")
    (tmp_path / "exp.yaml").write_text(json.dumps(data))
    monkeypatch.chdir(ROOT)  # the module is found beside the experiment, not in the cwd
    sys.modules.pop("my_arbiters", None)
    try:
        loaded = load_experiment(tmp_path / "exp.yaml", ["seeds=2", "horizon=400"])
        outcome = run_experiment(loaded, tmp_path / "out", executor="serial", progress=False)
    finally:
        sys.modules.pop("my_arbiters", None)
    assert outcome.n_failed == 0
    import pandas as pd

    summary = pd.read_csv(tmp_path / "out" / "summary.csv").set_index(["metric", "scope"])
    assert summary.loc[("arbiter_aborts", "all"), "mean"] > 0
    assert summary.loc[("arbitrations", "event=deadline_risk"), "mean"] > 0
    assert summary.loc[("lost", "all"), "mean"] == 0


def test_reassign_after_a_failure_avoids_the_agent_it_failed_on() -> None:
    """``requeue``: a reassigned task goes straight to another agent, even out of attempts
    (``max_attempts`` 1: nothing is abandoned), never back to where it failed."""
    cfg = _failing(arbiter="tests.unit.test_arbitrated:hand_over")
    cfg["scenario"]["failures"]["agents"]["max_attempts"] = 1
    world, cols = simulate_world(RunSpec.make(cfg, "p", (), 5, trace=True))
    assert world.kernel.log is not None
    rows = world.kernel.log.rows
    checked = 0
    for i, r in enumerate(rows):
        if r[1] != "arbitrate":
            continue
        failed_on = json.loads(r[7])["agent"]
        sent = next(x for x in rows[i + 1 :] if x[1] == "send:task" and x[2] == r[2])
        if sent[0] == r[0]:  # sent at once (later: no agent was up, it waited its turn)
            assert sent[5] != failed_on
            checked += 1
    assert checked > 10
    assert ABANDONED not in cols["state"].tolist()
