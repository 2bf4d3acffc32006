"""Roles, experience and data locality: exact figures on small deterministic scenarios."""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from kossim.config.experiment import load_experiment
from kossim.runspec import RunSpec
from kossim.sim import simulate, simulate_world
from kossim.sim.roles import learned, transfer_time
from kossim.sim.task import DONE


def _exp(agents: list[dict[str, Any]], tasks: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """Arrivals every 10 time units (never a queue), constant work: every figure exact."""
    scenario = {
        "agents": agents,
        "workload": {
            "arrivals": {"process": "renewal", "interarrival": {"dist": "constant", "value": 10}},
            "tasks": tasks,
        },
        **extra.pop("scenario", {}),
    }
    return {
        "name": "roles",
        "seeds": 1,
        "tasks": 6,
        "scenario": scenario,
        "policies": [{"name": "p", **extra.pop("policy", {})}],
        **extra,
    }


def _run(config: dict[str, Any], trace: bool = False) -> tuple[Any, dict[str, np.ndarray]]:
    spec = RunSpec(run_id="r", policy="p", point={}, seed=0, config=config, trace=trace)
    return simulate_world(spec)


def _metrics(config: dict[str, Any]) -> dict[tuple[str, str], float]:
    spec = RunSpec(run_id="r", policy="p", point={}, seed=0, config=config)
    result = simulate(spec)
    assert result.status == "ok", result.error
    return {(m, s): v for m, s, v in result.metrics}


def test_learning_curve_rises_from_p0_toward_the_cap() -> None:
    """p(n) = p0 + (cap - p0)(1 - exp(-n / tau)); a cap below p0 leaves p0."""
    assert learned(0.5, 0, 2.0, 10.0) == 0.5
    assert learned(0.5, 10, 2.0, 10.0) == pytest.approx(0.5 + 1.5 * (1 - math.exp(-1)))
    assert learned(0.5, 10_000, 2.0, 10.0) == pytest.approx(2.0)
    assert learned(1.5, 7, 1.2, 3.0) == 1.5


def test_transfer_cost_is_size_over_bandwidth_plus_latency() -> None:
    assert transfer_time(3.0, 2.0, 0.5) == 2.0
    assert transfer_time(3.0, None, 0.5) == 0.5  # no bandwidth given: latency only
    assert transfer_time(0.0, 4.0, 0.0) == 0.0


def test_service_time_follows_the_learning_curve_task_by_task() -> None:
    """One learning agent, work 1 at speed 1: task k takes 1 / p(k) (k done before it)."""
    config = _exp(
        [{"group": "w", "speed": 1.0, "learning": {"cap": 2.0, "tau": 2.0}}],
        [{"type": "job", "work": {"dist": "constant", "value": 1.0}}],
    )
    world, cols = _run(config)
    service = cols["end"] - cols["start"]
    expected = [1.0 / learned(1.0, k, 2.0, 2.0) for k in range(len(service))]
    assert service.tolist() == pytest.approx(expected, rel=1e-12)
    assert world.agents[0].history == {0: len(service)}


def test_a_task_away_from_its_data_waits_for_the_transfer() -> None:
    """Input of size 3 on node a, agent on node b, bandwidth 2, latency 0.25 per link:
    transfer 3 / 2 + 0.5 (a -> coordinator -> b) = 2.0; sojourn = 0.25 to send + 2.0 + 1."""
    config = _exp(
        [{"group": "w", "node": "b"}],
        [
            {
                "type": "job",
                "work": {"dist": "constant", "value": 1.0},
                "data": {"node": "a", "size": 3},
            }
        ],
        scenario={
            "nodes": [{"name": "a"}, {"name": "b"}],
            "network": {"latency": {"dist": "constant", "value": 0.25}, "bandwidth": 2.0},
        },
    )
    _, cols = _run(config)
    assert (cols["end"] - cols["arrival"]).tolist() == pytest.approx([3.25] * 6)
    m = _metrics(config)
    assert m[("transfer_time_mean", "all")] == pytest.approx(2.0)
    assert m[("local_share", "all")] == 0.0
    assert m[("transfer_time_mean", "type=job")] == pytest.approx(2.0)


def test_a_task_on_its_data_node_pays_nothing() -> None:
    config = _exp(
        [{"group": "w", "node": "a"}],
        [
            {
                "type": "job",
                "work": {"dist": "constant", "value": 1.0},
                "data": {"node": "a", "size": 3},
            }
        ],
        scenario={
            "nodes": [{"name": "a"}],
            "network": {"latency": {"dist": "constant", "value": 0.25}, "bandwidth": 2.0},
        },
    )
    m = _metrics(config)
    assert m[("transfer_time_mean", "all")] == 0.0
    assert m[("local_share", "all")] == 1.0
    assert m[("sojourn_mean", "all")] == pytest.approx(1.25)


FALLBACK_SCENARIO = {
    "roles": {
        "engineer": {"skills": ["code"], "fallback": {"role": "lead", "penalty": 0.5}},
        "lead": {"duties": ["review"]},
    },
}


def _fallback_config(routing: str = "random") -> dict[str, Any]:
    """One engineer, one lead with the code skill; tasks of work 1 every 0.6."""
    config = _exp(
        [
            {"group": "eng", "roles": ["engineer"]},
            {"group": "lead", "roles": ["lead"], "skills": {"code": 1.0}},
        ],
        [{"type": "build", "role": "engineer", "work": {"dist": "constant", "value": 1.0}}],
        scenario=copy.deepcopy(FALLBACK_SCENARIO),
        policy={"routing": routing},
    )
    config["scenario"]["workload"]["arrivals"]["interarrival"]["value"] = 0.6
    return config


@pytest.mark.parametrize("routing", ["random", "jsq", "role_based"])
def test_a_substitute_takes_a_task_only_when_no_holder_is_free(routing: str) -> None:
    """Arrivals at 0.6, 1.2, 1.8, ...: the engineer (free at 0.6) takes the first; the
    second finds it busy until 1.6, so the lead takes it at half proficiency (2.0 long);
    the third finds the engineer free again, and so on in turn."""
    world, cols = _run(_fallback_config(routing), trace=True)
    order = np.argsort(cols["id"])
    agents = cols["agent"][order].tolist()
    service = (cols["end"] - cols["start"])[order].tolist()
    assert agents == [0, 1, 0, 0, 1, 0]
    assert service == pytest.approx([1.0, 2.0, 1.0, 1.0, 2.0, 1.0])
    reasons = [
        r
        for k, r in zip(
            world.kernel.log.columns()["kind"], world.kernel.log.columns()["reason"], strict=True
        )
        if k == "fallback"
    ]
    assert reasons and all("no agent of role engineer available" in r for r in reasons)
    m = _metrics(_fallback_config(routing))
    assert m[("fallbacks", "all")] == 2.0
    assert m[("fallback_share", "all")] == pytest.approx(2 / 6)


def test_without_a_fallback_the_task_waits_for_a_holder() -> None:
    config = _fallback_config()
    del config["scenario"]["roles"]["engineer"]["fallback"]
    _, cols = _run(config)
    assert set(cols["agent"].tolist()) == {0}
    assert _metrics(config)[("fallbacks", "all")] == 0.0


def test_role_based_learns_history_only_from_completion_reports() -> None:
    """Its experience table counts the ``done`` messages that reached the coordinator:
    on an instant network every completion, per agent and type."""
    config = _exp(
        [{"group": "w", "count": 2, "learning": {"cap": 2.0, "tau": 3.0}}],
        [{"type": "job", "work": {"dist": "constant", "value": 1.0}}],
        policy={"routing": "role_based"},
    )
    world, cols = _run(config)
    router = world.coordinator.router
    done = cols["state"] == DONE
    counts = np.bincount(cols["agent"][done], minlength=2)
    assert router.heard == {(i, 0): int(n) for i, n in enumerate(counts) if n}
    # once one agent has learned, the router keeps sending there (it is faster)
    assert counts.max() == len(cols["id"])


def test_role_based_scores_are_logged_with_their_parts() -> None:
    world, _ = _run(_fallback_config("role_based"), trace=True)
    cols = world.kernel.log.columns()
    routes = [r for k, r in zip(cols["kind"], cols["reason"], strict=True) if k == "route"]
    assert routes and all("score" in r and "service" in r and "transfer" in r for r in routes)


@pytest.mark.parametrize(
    ("change", "where", "says"),
    [
        (
            lambda c: c["scenario"]["agents"][0].update(roles=["enginer"]),
            "agents.0.roles.0",
            "did you mean",
        ),
        (
            lambda c: c["scenario"]["roles"]["engineer"]["fallback"].update(role="engineer"),
            "roles.engineer.fallback",
            "itself",
        ),
        (
            lambda c: [g.update(roles=[]) for g in c["scenario"]["agents"]],
            "workload.tasks.0.role",
            "no agent group",
        ),
        (
            lambda c: c["scenario"]["workload"]["tasks"][0].update(affinity=["nowhere"]),
            "workload.tasks.0.affinity.0",
            "unknown",
        ),
        (
            lambda c: c["scenario"]["workload"]["tasks"][0].update(data={"node": "x", "size": 1.0}),
            "workload.tasks.0.data.node",
            "unknown node",
        ),
    ],
)
def test_role_mistakes_are_located(
    change: Any, where: str, says: str, write_experiment: Callable[..., Path]
) -> None:
    """Each mistake is reported at its field, with what is wrong."""
    config = _fallback_config()
    change(config)
    with pytest.raises(Exception) as err:
        load_experiment(write_experiment(config))
    text = str(err.value)
    assert f"scenario.{where}" in text and says in text, text


def test_the_readme_roles_example_runs(tmp_path: Path) -> None:
    """The README's roles example, as an experiment file, runs (shortened) and measures
    the role metrics."""
    import re

    from kossim.config.loader import load_yaml_text
    from kossim.lab import run_experiment

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = next(
        b for b in re.findall(r"```yaml\n(.*?)```", readme, flags=re.S) if "role_based" in b
    )
    part, _ = load_yaml_text(block)
    data = {"name": "readme-roles", "seeds": 2, "horizon": 200, "warmup": 20, **part}
    path = tmp_path / "roles.yaml"
    path.write_text(json.dumps(data))
    outcome = run_experiment(load_experiment(path), tmp_path / "out", executor="serial",
                             progress=False)  # fmt: skip
    assert outcome.n_failed == 0
    metrics = pd.read_parquet(tmp_path / "out" / "metrics.parquet")
    shares = metrics[(metrics.metric == "local_share") & (metrics.scope == "all")]
    assert len(shares) == 4 and shares.value.between(0, 1).all()


def test_an_interrupted_transfer_starts_over() -> None:
    """Up 3, down 1, from time 0; the task arrives at 10 (input 2 away at bandwidth 1):
    transfer 10 -> 11, cut by the crash at 11; again 12 -> 14 after the repair; work 0.5
    done at 14.5."""
    config = _exp(
        [{"group": "w", "node": "b"}],
        [
            {
                "type": "job",
                "work": {"dist": "constant", "value": 0.5},
                "data": {"node": "a", "size": 2},
            }
        ],
        scenario={
            "nodes": [{"name": "a"}, {"name": "b"}],
            "network": {"bandwidth": 1.0},
            "failures": {
                "agents": {
                    "up": {"dist": "constant", "value": 3.0},
                    "down": {"dist": "constant", "value": 1.0},
                }
            },
        },
    )
    config["tasks"] = 1
    _, cols = _run(config)
    assert cols["end"].tolist() == [14.5]
    assert _metrics(config)[("transfer_time_mean", "all")] == 2.0  # the transfer that landed


def test_transfers_follow_the_cheapest_path() -> None:
    """A direct link a-b of latency 0.1 beats the star through the coordinator (1 + 1)."""
    config = _exp(
        [{"group": "w", "node": "b"}],
        [
            {
                "type": "job",
                "work": {"dist": "constant", "value": 1.0},
                "data": {"node": "a", "size": 0},
            }
        ],
        scenario={
            "nodes": [{"name": "a"}, {"name": "b"}],
            "network": {
                "latency": {"dist": "constant", "value": 1.0},
                "links": [{"a": "a", "b": "b", "latency": {"dist": "constant", "value": 0.1}}],
            },
        },
    )
    assert _metrics(config)[("transfer_time_mean", "all")] == pytest.approx(0.1)


def test_sampling_role_based_conforms_and_routes_well() -> None:
    """With ``sample`` it scores a few candidates drawn at random: still a valid,
    deterministic router, and on the bench fleet (a quarter fast) far better than random."""
    from kossim.bench.routing import routing_config
    from kossim.conformance import check_component

    assert check_component("routing", {"id": "role_based", "sample": 2}) == []
    sojourn = {}
    for name, ref in (("random", "random"), ("sampled", {"id": "role_based", "sample": 4})):
        config = routing_config(40, ref, 3000)
        spec = RunSpec(run_id="r", policy="p", point={}, seed=0, config=config)
        result = simulate(spec)
        sojourn[name] = {(m, s): v for m, s, v in result.metrics}[("sojourn_mean", "all")]
    assert sojourn["sampled"] < 0.8 * sojourn["random"], sojourn


def test_the_routing_bench_measures_each_size() -> None:
    from kossim.bench.routing import measure_routing

    figures = measure_routing({"id": "role_based", "sample": 4}, sizes=(10, 20), per_agent=1)
    assert [n for n, _ in figures] == [10, 20] and all(us >= 0 for _, us in figures)
