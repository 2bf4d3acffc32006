"""Experimental mode: bad results (physics), the Beta reputation and the trust-gated coordinator."""

from __future__ import annotations

import math
from typing import Any

import pytest

from kossim.config.models import Experiment
from kossim.errors import FieldError
from kossim.runspec import RunSpec
from kossim.sim import simulate, simulate_world
from kossim.sim.task import DONE, Task
from kossim.sim.world import World
from policies.trust import (
    PROBATION,
    QUARANTINED,
    TRUSTED,
    TrustGated,
    promotion_bound,
    quarantine_bound,
)


def _config(
    policy: dict[str, Any],
    *,
    new_bad: float = 0.5,
    new_good: float = 0.0,
    veteran: float = 0.0,
    horizon: float = 400.0,
    failures: dict[str, Any] | None = None,
) -> dict[str, Any]:
    scenario: dict[str, Any] = {
        "agents": [
            {"group": "veteran", "count": 4, "trust": 0.98, "bad_results": veteran},
            {"group": "newgood", "count": 1, "trust": 0.75, "bad_results": new_good},
            {"group": "newbad", "count": 1, "trust": 0.75, "bad_results": new_bad},
        ],
        "workload": {
            "arrivals": {"process": "poisson", "rate": 2.5},
            "tasks": [
                {"type": "report", "share": 0.4, "work": {"dist": "exponential", "mean": 1.0},
                 "criticality": "low"},
                {"type": "payment", "share": 0.6, "work": {"dist": "exponential", "mean": 1.0}},
            ],
        },
    }  # fmt: skip
    if failures:
        scenario["failures"] = failures
    return {
        "name": "t",
        "seeds": 1,
        "horizon": horizon,
        "scenario": scenario,
        "policies": [{"name": "p", "dispatch": "push", "routing": "jsq", **policy}],
    }


SHADOW = {"coordinator": {"id": "trust_gated", "mode": "shadow"}}
LOWCRIT = {"coordinator": {"id": "trust_gated", "mode": "low_criticality", "verify": 0.3}}


def _metrics(config: dict[str, Any], seed: int = 0) -> dict[tuple[str, str], float]:
    result = simulate(RunSpec.make(config, "p", (), seed))
    assert result.status == "ok", result.error
    return {(m, s): v for m, s, v in result.metrics}


def _coordinator(policy: dict[str, Any], **kw: Any) -> TrustGated:
    """The coordinator of a world built but not run: its reputations are the priors."""
    exp = Experiment.model_validate(_config(policy, **kw))
    coord = World(exp, exp.policy("p"), 0).coordinator
    assert isinstance(coord, TrustGated)
    return coord


# -- the Beta reputation ------------------------------------------------------------------
def test_the_prior_is_the_agents_trust_worth_prior_strength_outcomes() -> None:
    """alpha = s x trust, beta = s x (1 - trust); the standing follows from the mean."""
    coord = _coordinator(SHADOW)
    assert coord.alpha[0] == pytest.approx(9.8) and coord.beta[0] == pytest.approx(0.2)
    assert coord.alpha[4] == pytest.approx(7.5) and coord.beta[4] == pytest.approx(2.5)
    assert coord.status == [TRUSTED] * 4 + [PROBATION, PROBATION]


def test_a_good_outcome_adds_to_alpha_a_bad_one_to_beta() -> None:
    coord = _coordinator(SHADOW)
    task = _any_task()
    coord._learn(4, False, task, "audit")
    assert (coord.alpha[4], coord.beta[4]) == (8.5, 2.5)
    coord._learn(4, True, task, "audit")
    assert (coord.alpha[4], coord.beta[4]) == (8.5, 3.5)
    assert coord._mean(4) == pytest.approx(8.5 / 12)


def _any_task() -> Task:
    return Task(0, "report", 0, 1.0, 0, math.inf, (), 0.0, True)


def test_promotion_comes_exactly_when_the_posterior_mean_reaches_the_threshold() -> None:
    """Prior mean 0.75 worth 10: (7.5 + n) / (10 + n) >= 0.9 first at n = 15 good outcomes."""
    assert promotion_bound(0.75, 10, 0.9) == 15
    coord = _coordinator(SHADOW)
    task = _any_task()
    for n in range(1, 16):
        coord._learn(4, False, task, "shadow")
        assert coord.status[4] == (TRUSTED if n == 15 else PROBATION), n
    assert coord.on_probation == [coord.views[5]]
    coord._learn(4, True, task, "audit")  # promotion is for good: a bad result later ...
    assert coord.status[4] == TRUSTED  # ... lowers the mean (22.5 / 26) but not the standing


def test_quarantine_comes_when_the_posterior_mean_falls_below_the_floor() -> None:
    """7.5 / (10 + k) < 0.6 first at k = 3 bad outcomes; one good one in between needs 2 more
    (8.5 / (11 + k) < 0.6 at k = 4... the bound says how many)."""
    assert quarantine_bound(0.75, 10, 0.6) == 3
    assert quarantine_bound(0.75, 10, 0.6, good=1) == 4
    coord = _coordinator(SHADOW)
    task = _any_task()
    for k in range(1, 4):
        coord._learn(5, True, task, "shadow")
        assert coord.status[5] == (QUARANTINED if k == 3 else PROBATION), k
    coord._learn(5, False, task, "shadow")  # quarantine is for good too
    assert coord.status[5] == QUARANTINED
    assert coord.quarantined_after == {5: (0, 3)}


def test_a_floor_at_or_above_the_threshold_is_refused() -> None:
    bad = _config({"coordinator": {"id": "trust_gated", "promote": 0.6, "quarantine": 0.6}})
    with pytest.raises((FieldError, ValueError), match="quarantine floor must be below"):
        Experiment.model_validate(bad)


def test_criticality_is_low_or_high_and_defaults_to_high() -> None:
    exp = Experiment.model_validate(_config(SHADOW))
    assert [t.criticality for t in exp.scenario.workload.tasks] == ["low", "high"]
    bad = _config(SHADOW)
    bad["scenario"]["workload"]["tasks"][0]["criticality"] = "medium"
    with pytest.raises(ValueError, match="criticality"):
        Experiment.model_validate(bad)


# -- physics: bad results ------------------------------------------------------------------------
def test_an_agents_kth_result_is_bad_or_good_alike_under_every_policy() -> None:
    """One fallible agent gets every task in the same order under pull and push dispatch:
    the same results come out bad (the draw is on the agent's own stream)."""
    config = _config({})
    config["scenario"]["agents"] = [{"group": "solo", "count": 1, "bad_results": 0.3}]
    config["scenario"]["workload"]["arrivals"]["rate"] = 0.5
    config["policies"] = [
        {"name": "p", "dispatch": "push", "routing": "jsq"},
        {"name": "q", "dispatch": "central", "routing": "random"},
    ]
    got = []
    for name in ("p", "q"):
        result = simulate(RunSpec.make(config, name, (), 3))
        rows = {(m, s): v for m, s, v in result.metrics}
        got.append((rows[("bad_results", "all")], rows[("completed", "all")]))
    assert got[0] == got[1]
    bad, completed = got[0]
    p = bad / completed  # about 200 results: 0.3 within 4 standard errors
    assert abs(p - 0.3) < 4 * math.sqrt(0.3 * 0.7 / completed)


def test_a_fleet_without_bad_agents_reports_no_result_metrics_under_a_plain_coordinator() -> None:
    config = _config({}, new_bad=0.0)
    rows = _metrics(config)
    assert ("bad_delivered", "all") not in rows


# -- the coordinator ---------------------------------------------------------------------------
def test_in_shadow_mode_a_shadows_result_is_never_delivered() -> None:
    """Newcomers always wrong, veterans always right: nothing bad reaches the user, every
    bad result is caught by comparison and the newcomers are quarantined."""
    rows = _metrics(_config(SHADOW, new_bad=1.0, new_good=1.0))
    assert rows[("bad_delivered", "all")] == 0
    assert rows[("bad_results", "all")] == rows[("bad_caught", "via=shadow")] > 0
    assert rows[("quarantined", "group=newbad")] == rows[("quarantined", "group=newgood")] == 1
    assert rows[("quarantine_outcomes", "agent=newbad-0")] == quarantine_bound(0.75, 10, 0.6)
    assert rows[("shadows", "all")] > 0 and rows[("shadow_work", "all")] > 0
    assert rows[("lost", "all")] == 0


def test_shadows_are_compared_across_a_network_with_latency() -> None:
    """A shadow's report crosses the network like any other: with latency the comparisons
    (and so the verdicts) are the same in number as the shadows that finished, and a bad
    shadow result is never delivered."""
    config = _config(SHADOW, new_bad=1.0, new_good=1.0)
    config["scenario"]["network"] = {"latency": {"dist": "constant", "value": 0.1}}
    rows = _metrics(config)
    assert rows[("bad_delivered", "all")] == 0
    assert rows[("bad_results", "all")] == rows[("bad_caught", "via=shadow")] > 0
    assert rows[("quarantined", "group=newbad")] == rows[("quarantined", "group=newgood")] == 1
    assert rows[("lost", "all")] == 0


def test_a_perfect_newcomer_is_promoted_after_exactly_the_bound() -> None:
    rows = _metrics(_config(SHADOW, new_bad=0.0, new_good=0.0))
    bound = promotion_bound(0.75, 10, 0.9)
    assert rows[("promotion_outcomes", "agent=newgood-0")] == bound
    assert rows[("promotion_outcomes", "agent=newbad-0")] == bound
    assert rows[("promotion_tasks", "agent=newgood-0")] >= bound


def test_in_low_criticality_mode_no_high_task_reaches_an_agent_on_probation() -> None:
    """Without audits newcomers never leave probation: they complete reports only, while the
    veterans complete payments."""
    policy = {"coordinator": {"id": "trust_gated", "mode": "low_criticality"}}
    for dispatch in ("push", "central"):
        config = _config({**policy, "dispatch": dispatch}, new_bad=0.0)
        _, cols = simulate_world(RunSpec.make(config, "p", (), 0))
        done = cols["state"] == DONE
        newcomers = cols["agent"] >= 4
        assert (done & newcomers & (cols["tidx"] == 0)).sum() > 0
        assert (done & newcomers & (cols["tidx"] == 1)).sum() == 0
        assert (done & ~newcomers & (cols["tidx"] == 1)).sum() > 0


def test_under_pull_a_blocked_head_lets_low_criticality_tasks_by(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Central dispatch: while a payment waits at the head for a trusted agent, a free
    newcomer takes the first waiting report instead of idling."""
    config = _config(
        {"dispatch": "central", "coordinator": {"id": "trust_gated", "mode": "low_criticality"}},
        new_bad=0.0,
    )
    config["scenario"]["agents"] = [
        {"group": "veteran", "count": 2, "trust": 0.98},
        {"group": "newcomer", "count": 1, "trust": 0.75},
    ]
    config["scenario"]["workload"]["arrivals"]["rate"] = 2.4

    def newcomer_reports() -> int:
        _, cols = simulate_world(RunSpec.make(config, "p", (), 0))
        done = (cols["state"] == DONE) & (cols["tidx"] == 0)
        return int((done & (cols["agent"] == 2)).sum())

    letting_by = newcomer_reports()
    monkeypatch.setattr(TrustGated, "_dispatch_other", lambda self: False)
    blocked = newcomer_reports()
    assert letting_by > blocked * 1.1


def test_low_criticality_mode_learns_from_audits_only() -> None:
    rows = _metrics(_config(LOWCRIT))
    assert rows[("verifications", "all")] > 0
    assert rows[("bad_caught", "via=shadow")] == 0 and rows[("shadows", "all")] == 0
    assert rows[("quarantined", "group=newbad")] == 1
    assert rows[("promoted", "group=newgood")] == 1


def test_the_execution_log_gives_each_decision_a_reason() -> None:
    config = _config(SHADOW)
    result = simulate(RunSpec.make(config, "p", (), 0, trace=True))
    assert result.events is not None
    kinds = list(result.events["kind"])
    reasons = dict(zip(kinds, result.events["reason"], strict=True))
    for kind in ("reputation", "shadow", "verdict", "promote", "quarantine"):
        assert kind in kinds, kind
    audited = simulate(RunSpec.make(_config(LOWCRIT), "p", (), 0, trace=True))
    assert audited.events is not None and "audit" in list(audited.events["kind"])
    assert "promoted: reputation" in reasons["promote"]
    assert "quarantined: reputation" in reasons["quarantine"]


def test_the_readme_example_runs() -> None:
    """The README's experimental-mode scenario with its three policies simulates."""
    import re
    from pathlib import Path

    from kossim.config.loader import load_yaml_text

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", readme, flags=re.S)
    scenario, _ = load_yaml_text(next(b for b in blocks if b.startswith("scenario:  # exp")))
    policies, _ = load_yaml_text(next(b for b in blocks if b.startswith("policies:  # trust")))
    config = {"name": "readme", "seeds": 1, "horizon": 200.0, **scenario, **policies}
    for policy in ("blind", "lowcrit", "shadow"):
        result = simulate(RunSpec.make(config, policy, (), 0))
        assert result.status == "ok", result.error
        rows = {(m, s): v for m, s, v in result.metrics}
        assert rows[("lost", "all")] == 0 and rows[("bad_results", "all")] > 0


def test_a_trust_gated_run_is_a_pure_function_of_its_seed() -> None:
    for policy in (SHADOW, LOWCRIT):
        config = _config(policy)
        first, second = _metrics(config, 7), _metrics(config, 7)
        assert first.keys() == second.keys()
        for key, value in first.items():  # nan == nan, as in the stored tables
            assert value == second[key] or (math.isnan(value) and math.isnan(second[key])), key
