"""Bundles: their YAML, quorum cancellation, gang reservation and a member agent's failure."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kossim.config.experiment import load_experiment
from kossim.errors import KossimInputError
from kossim.sim.task import DONE
from tests.unit.test_contract_net import decisions, traced
from tests.unit.test_engine import config, constant, metrics


def bundle_type(k: int, mode: str, work: Any, m: int | None = None) -> dict[str, Any]:
    bundle: dict[str, Any] = {"k": k, "mode": mode, **({"m": m} if m is not None else {})}
    return {"type": "b", "work": work, "bundle": bundle}


def _problem(tmp_path: Path, cfg: dict[str, Any]) -> str:
    path = tmp_path / "exp.yaml"
    path.write_text(json.dumps(cfg))
    with pytest.raises(KossimInputError) as err:
        load_experiment(path)
    return str(err.value)


@pytest.mark.parametrize(
    ("bundle", "policy", "located", "says"),
    [
        ({"k": 2, "mode": "gang"}, {}, "policies.0.coordinator", "use coordinator 'bundles'"),
        ({"k": 3, "mode": "quorum", "m": 4}, {}, "bundle.m", "at most k (3)"),
        ({"k": 3, "mode": "quorum"}, {}, "bundle.m", "needs m"),
        ({"k": 3, "mode": "independent", "m": 2}, {}, "bundle.m", "quorum only"),
        ({"k": 1}, {}, "bundle.k", "greater than or equal to 2"),
        ({"k": 3, "mode": "gang"}, {"coordinator": "bundles"}, "bundle.k", "the fleet has 2"),
    ],
)
def test_bad_bundles_are_located(
    tmp_path: Path, bundle: dict[str, Any], policy: dict[str, Any], located: str, says: str
) -> None:
    """A bundle the run could not honour fails at load, at the field, saying why."""
    cfg = config(
        tasks=3,
        agents=[{"group": "w", "count": 2}],
        types=[{"type": "b", "work": constant(1.0), "bundle": bundle}],
        policy=policy,
    )
    problem = _problem(tmp_path, cfg)
    assert located in problem and says in problem, problem


def test_a_gang_counts_only_the_agents_holding_its_role(tmp_path: Path) -> None:
    """Two agents, one an engineer: a gang of 2 engineers cannot assemble."""
    cfg = config(
        tasks=3,
        agents=[{"group": "eng", "count": 1, "roles": ["engineer"]}, {"group": "ops", "count": 1}],
        types=[
            {
                "type": "b",
                "work": constant(1.0),
                "role": "engineer",
                "bundle": {"k": 2, "mode": "gang"},
            },
        ],
        policy={"coordinator": "bundles"},
    )
    cfg["scenario"]["roles"] = {"engineer": {"skills": []}}
    problem = _problem(tmp_path, cfg)
    assert "bundle.k" in problem and "skills and role; the fleet has 1" in problem, problem


def test_a_bundle_type_cannot_also_renege(tmp_path: Path) -> None:
    """Patience would renege one subtask while its family decides the bundle's ending."""
    bundled = {"type": "b", "work": constant(1.0), "bundle": {"k": 2, "mode": "independent"}}
    cfg = config(tasks=3, types=[{**bundled, "patience": constant(1.0)}])
    problem = _problem(tmp_path, cfg)
    assert "tasks.0.patience" in problem and "cannot renege" in problem, problem


def test_quorum_cancels_the_remainder_and_counts_its_work() -> None:
    """On idle agents every part starts on arrival, so once m of k are done the other
    k - m have run exactly as long as the bundle: cancelled work is (k - m) x sojourn."""
    k, m = 4, 2
    cfg = config(
        tasks=200,
        interarrival=5.0,
        agents=[{"group": "w", "count": 4}],
        types=[bundle_type(k, "quorum", {"dist": "exponential", "mean": 1.0}, m)],
    )
    got = metrics(cfg, seed=3)
    assert got[("lost", "all")] == 0
    assert got[("completed", "all")] == 200
    assert got[("subtasks", "all")] == k * 200
    assert got[("subtasks_completed", "all")] == m * 200
    assert got[("cancelled_subtasks", "all")] == (k - m) * 200
    total = got[("sojourn_mean", "type=b")] * 200
    assert got[("cancelled_work", "all")] == pytest.approx((k - m) * total)
    _, rows = traced(cfg, seed=3)
    cancels = decisions(rows, "cancel")
    assert len(cancels) == (k - m) * 200
    assert all("(quorum reached), running on" in reason for _, reason in cancels)
    assert len(decisions(rows, "quorum")) == 200


def _gangs(assembly: str) -> dict[str, Any]:
    """Gangs of 2 arriving every 0.8 on a fast agent (speed 2) and a slow one: work 1
    takes 0.5 on the fast one and 1.0 on the slow one, so the fast one frees first."""
    return config(
        tasks=3,
        interarrival=0.8,
        agents=[{"group": "fast", "speed": 2.0}, {"group": "slow"}],
        types=[bundle_type(2, "gang", constant(1.0))],
        policy={"coordinator": {"id": "bundles", "assembly": assembly}},
    )


def test_a_gang_holds_the_agent_that_frees_first_until_the_other_frees() -> None:
    """Gang 1 starts at 0.8 (slow busy until 1.8); gang 2 arrives at 1.6, holds the fast
    agent from 1.6 and starts at 1.8; gang 3 holds it from 2.4 (arrival) to 2.8."""
    cols, rows = traced(_gangs("reserve"))
    assert cols["start"].tolist() == [0.8, 1.8, 2.8]
    assert cols["end"].tolist() == [1.8, 2.8, 3.8]
    held = [(t, reason) for t, reason in decisions(rows, "gang_reserve")]
    assert held == [
        (1.6, "bundle 1 holds fast-0 idle (1 of 2)"),
        (2.4, "bundle 2 holds fast-0 idle (1 of 2)"),
    ]
    starts = decisions(rows, "gang_start")
    assert [t for t, _ in starts] == [0.8, 1.8, 2.8]
    assert "on fast-0, slow-0 after 0.2 assembling" in starts[1][1]
    got = metrics(_gangs("reserve"))
    assert got[("reservation_idle", "all")] == pytest.approx(0.2 + 0.4)
    assert got[("reservation_share", "all")] == pytest.approx(
        0.6 / (2 * 3.8)
    )  # 2 slots over the run, 0 to 3.8


def test_a_waiting_gang_holds_nothing() -> None:
    """assembly wait: the same starts here (nothing else to run), but no agent is held."""
    cols, rows = traced(_gangs("wait"))
    assert cols["start"].tolist() == [0.8, 1.8, 2.8]
    assert decisions(rows, "gang_reserve") == []
    assert metrics(_gangs("wait"))[("reservation_idle", "all")] == 0.0


def test_a_failed_members_part_goes_to_another_agent_under_requeue() -> None:
    """Three parts on three agents; agent a-0 fails at 1.5 for good (requeue): its part
    waits for the first free agent (3.0, when the others finish) and ends at 5.0."""
    cfg = config(
        tasks=1,
        agents=[{"group": "a"}, {"group": "b", "count": 2}],
        types=[bundle_type(3, "independent", constant(2.0))],
        failures={
            "agents": {
                "up": constant(1.5),
                "down": constant(100.0),
                "on_failure": "requeue",
                "only": ["a"],
            }
        },
    )
    cols, rows = traced(cfg)
    assert cols["end"].tolist() == [5.0]
    assert cols["state"].tolist() == [DONE]
    starts = [(t, who) for t, kind, who, _ in rows if kind == "start"]
    assert sorted(starts[:3]) == [(1.0, "a-0"), (1.0, "b-0"), (1.0, "b-1")]
    assert starts[3][0] == 3.0 and starts[3][1] in ("b-0", "b-1")
    assert len(decisions(rows, "part_done")) == 2


def test_the_readme_bundle_types_run_in_the_bundles_experiment(tmp_path: Path) -> None:
    """The README's bundle task types, in experiments/routing/bundles.yaml (shortened), under
    its policies: every run ok, nothing lost, a row of bundle metrics per run."""
    import re

    from kossim.config.loader import load_yaml_text
    from kossim.lab import run_experiment

    root = Path(__file__).resolve().parents[2]
    readme = (root / "README.md").read_text()
    block = next(b for b in re.findall(r"```yaml\n(.*?)```", readme, flags=re.S) if "bundle:" in b)
    types, _ = load_yaml_text(block)
    data, _ = load_yaml_text((root / "experiments" / "routing" / "bundles.yaml").read_text())
    data["scenario"]["workload"]["tasks"] = types["tasks"]
    data.update(seeds=2, tasks=300, warmup_tasks=30, sweep={}, expect=[])
    path = tmp_path / "exp.yaml"
    path.write_text(json.dumps(data))
    outcome = run_experiment(
        load_experiment(path), tmp_path / "out", executor="serial", progress=False
    )
    assert outcome.n_failed == 0
    import pandas as pd

    rows = pd.read_parquet(tmp_path / "out" / "metrics.parquet")
    lost = rows[(rows.metric == "lost") & (rows.scope == "all")]
    assert (lost.value == 0).all() and len(lost) == 4
    assert set(rows[rows.metric == "sojourn_mean"].scope) >= {"type=render", "type=vote"}
    assert len(rows[rows.metric == "cancelled_subtasks"]) == 4
