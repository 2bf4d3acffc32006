"""The trigger timeline: scheduled scenario events applied at their times, logged, validated."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from kossim.config.experiment import load_experiment
from kossim.errors import KossimInputError
from kossim.runspec import RunSpec
from kossim.sim import simulate, simulate_world
from kossim.sim.faults import FaultyKernel
from kossim.sim.kernel import Kernel
from tests.unit.test_engine import config, constant, metrics


def _run(cfg: dict[str, Any], seed: int = 0, trace: bool = True) -> Any:
    return simulate_world(RunSpec.make(cfg, "p", (), seed, trace=trace))


def _events(world: Any, prefix: str) -> list[tuple[float, str, str]]:
    assert world.kernel.log is not None
    return [(r[0], r[1], r[6]) for r in world.kernel.log.rows if r[1].startswith(prefix)]


def test_no_timeline_keeps_the_plain_kernel() -> None:
    """A scenario without a timeline or network faults runs on the default kernel."""
    world, _ = _run(config(horizon=5.0), trace=False)
    assert type(world.kernel) is Kernel
    assert world.scenario_events is None


def test_surge_multiplies_the_rate_by_a_time_change_of_the_same_draws() -> None:
    """Arrivals every 1; a surge x2 from 10 to 20 makes them every 0.5 there, then every 1
    again: the inter-arrival draws are the same, time runs faster inside the surge."""
    cfg = config(horizon=25.5, work=0.1)
    cfg["scenario"]["timeline"] = [{"at": 10, "kind": "surge", "factor": 2.0, "until": 20}]
    world, cols = _run(cfg)
    arrivals = sorted(cols["arrival"].tolist())
    expected = [*range(1, 11), *np.arange(10.5, 20.01, 0.5), *range(21, 26)]
    assert arrivals == pytest.approx(expected)
    assert isinstance(world.kernel, FaultyKernel)
    kinds = [k for _, k, _ in _events(world, "timeline:")]
    assert kinds == ["timeline:surge", "timeline:surge:end"]


def test_a_surge_crossing_a_pending_gap_is_exact() -> None:
    """A gap of 4 drawn at 0 with a surge x4 from 2 on: 2 at rate 1, then the other 2 of
    base time take 0.5: the arrival is at 2.5 (then every 0.25... times 4)."""
    cfg = config(horizon=3.6, work=0.01, interarrival=4.0)
    cfg["scenario"]["timeline"] = [{"at": 2, "kind": "surge", "factor": 4.0}]
    _, cols = _run(cfg)
    assert sorted(cols["arrival"].tolist()) == pytest.approx([2.5, 3.5])


def test_inject_adds_tasks_at_its_time_on_their_own_streams() -> None:
    """``n`` tasks of the type arrive at ``at``; the regular arrivals are unchanged."""
    cfg = config(horizon=10.5, work=0.1)
    cfg["scenario"]["timeline"] = [{"at": 4.25, "kind": "inject", "type": "job", "n": 3}]
    _, cols = _run(cfg)
    arrivals = sorted(cols["arrival"].tolist())
    assert arrivals == pytest.approx([*range(1, 5), 4.25, 4.25, 4.25, *range(5, 11)])
    assert len(set(cols["id"].tolist())) == 13
    m = metrics(cfg)
    assert m[("arrived", "all")] == 13 and m[("lost", "all")] == 0


def test_kill_takes_agents_down_until_repaired() -> None:
    """A kill of a group at 3 until 6: its agents are down in between, and tasks wait."""
    cfg = config(horizon=12.0, work=0.5, agents=[{"group": "w", "count": 2}])
    cfg["scenario"]["timeline"] = [{"at": 3, "kind": "kill", "agents": ["w"], "until": 6}]
    world, cols = _run(cfg)
    assert [a.crash_times for a in world.agents] == [[3.0], [3.0]]
    assert all(a.up for a in world.agents)
    starts = cols["start"][(cols["arrival"] > 3) & (cols["arrival"] < 6)]
    assert (starts >= 6.0).all() and len(starts) == 2  # arrivals at 4 and 5 waited
    crashes = [(t, k) for t, k, _ in _events(world, "") if k in ("crash", "repair")]
    assert crashes == [(3.0, "crash"), (3.0, "crash"), (6.0, "repair"), (6.0, "repair")]


def test_repair_event_ends_only_the_timelines_own_kills() -> None:
    """A paired ``repair`` brings back an agent the timeline killed; repairing one it did not
    kill changes nothing."""
    cfg = config(horizon=10.0, work=0.2, agents=[{"group": "w", "count": 2}])
    cfg["scenario"]["timeline"] = [
        {"at": 2, "kind": "kill", "agents": ["w-0"]},
        {"at": 5, "kind": "repair", "agents": ["w"]},
    ]
    world, _ = _run(cfg)
    w0, w1 = world.agents
    assert w0.crash_times == [2.0] and w0.up and w0.down == 0
    assert w1.crash_times == [] and w1.up and w1.down == 0


def test_set_switches_a_component_parameter_and_calls_on_params() -> None:
    """``set`` changes the policy's routing ``d`` at its time; ``on_params`` sees the old."""
    cfg = config(horizon=10.0, agents=[{"group": "w", "count": 4}])
    cfg["policies"][0] = {"name": "p", "dispatch": "push", "routing": {"id": "power_of_d", "d": 2}}
    cfg["scenario"]["timeline"] = [
        {"at": 5, "kind": "set", "component": "routing", "param": "d", "value": 4}
    ]
    spec = RunSpec.make(cfg, "p", (), 0, trace=True)
    from kossim.config.models import Experiment
    from kossim.sim.world import World

    exp = Experiment.model_validate(spec.config)
    world = World(exp, exp.policy("p"), 0, trace=True)
    router = world.component("routing")
    seen: list[Any] = []
    router.on_params = lambda old: seen.append((world.env.now, old.d, router.params.d))
    world.run()
    assert seen == [(5.0, 2, 4)]
    reasons = [r for _, k, r in _events(world, "timeline:set")]
    assert reasons == ["timeline set at 5: routing 'power_of_d': d = 4"]


def test_events_reach_the_report_as_marks() -> None:
    """Periods become ``event:<label>`` series from 1 to 0; instants a single point."""
    cfg = config(horizon=10.0, work=0.2, agents=[{"group": "w", "count": 2}])
    cfg["scenario"]["timeline"] = [
        {"at": 2, "kind": "kill", "agents": ["w-0"], "until": 4},
        {"at": 3, "kind": "inject", "type": "job", "n": 2},
        {"at": 5, "kind": "partition", "groups": [["w-1"]], "name": "cut"},
        {"at": 6, "kind": "kill", "agents": ["w"]},
        {"at": 8, "kind": "repair", "agents": ["w-0", "w-1"]},
        {"at": 8.5, "kind": "partition", "groups": [["w-0"]], "name": "brief"},
        {"at": 9, "kind": "heal", "name": "brief"},
    ]
    result = simulate(RunSpec.make(cfg, "p", (), 0))
    assert result.status == "ok", result.error
    series = {k: v for k, v in result.timeseries.items() if k.startswith("event:")}
    assert series == {
        "event:kill w-0": ([2.0, 4.0], [1.0, 0.0]),
        "event:inject 2 job": ([3.0], [0.0]),
        "event:partition cut": ([5.0, 10.0], [1.0, 0.0]),  # open: to the end of the run
        "event:kill w": ([6.0, 8.0], [1.0, 0.0]),  # closed by the repair of all its agents
        "event:repair w-0,w-1": ([8.0], [0.0]),
        "event:partition brief": ([8.5, 9.0], [1.0, 0.0]),  # closed by its heal
        "event:heal brief": ([9.0], [0.0]),
    }


def _experiment(tmp_path: Path, timeline: str) -> Path:
    path = tmp_path / "exp.yaml"
    path.write_text(
        "name: t\nhorizon: 50\nseeds: 1\n"
        "scenario:\n"
        "  agents: [{group: w, count: 2}]\n"
        "  workload:\n"
        "    arrivals: {process: poisson, rate: 1.0}\n"
        "    tasks: [{type: job, work: {dist: exponential, mean: 0.5}}]\n"
        f"  timeline: {timeline}\n"
        "policies: [{name: p}]\n"
    )
    return path


def test_a_csv_timeline_is_the_same_as_the_listed_one(tmp_path: Path) -> None:
    """``timeline: {csv: file}`` (relative to the experiment) gives the same runs."""
    (tmp_path / "events.csv").write_text(
        'at,kind,until,agents,factor\n5,kill,9,"[w-0]",\n10,surge,20,,3\n'
    )
    listed = (
        "[{at: 5, kind: kill, until: 9, agents: [w-0]}, "
        "{at: 10, kind: surge, until: 20, factor: 3}]"
    )
    a = load_experiment(_experiment(tmp_path, "{csv: events.csv}"))
    b = load_experiment(_experiment(tmp_path, listed))
    runs = [simulate(RunSpec.make(x.data, "p", (), 1)) for x in (a, b)]
    assert [repr(m) for m in runs[0].metrics] == [repr(m) for m in runs[1].metrics]
    assert runs[0].timeseries == runs[1].timeseries


@pytest.mark.parametrize(
    ("timeline", "message"),
    [
        ("[{at: 5, kind: kill, agents: [x-0]}]", "unknown agent or group 'x-0'"),
        ("[{at: 5, kind: partition, groups: [[nowhere]]}]", "unknown node, agent or group"),
        ("[{at: 5, kind: inject, type: etl}]", "unknown task type 'etl'"),
        ("[{at: 5, kind: heal, name: cut}]", "no partition named 'cut'"),
        ("[{at: 5, kind: link, a: w-0, b: w-1, loss: 0.5}]", "no link between"),
        ("[{at: 5, kind: set, component: routing, param: d, value: 3}]", "no policy's routing"),
        ("[{at: 5, kind: meteor}]", "'surge', 'inject'"),
    ],
)
def test_unknown_names_fail_at_load_with_the_line(
    tmp_path: Path, timeline: str, message: str
) -> None:
    with pytest.raises(KossimInputError) as err:
        load_experiment(_experiment(tmp_path, timeline))
    text = str(err.value)
    assert message in text and "exp.yaml:9:" in text


def test_a_bad_csv_row_is_named(tmp_path: Path) -> None:
    (tmp_path / "events.csv").write_text("at,kind,factor\n5,surge,2\n7,surge,-1\n")
    with pytest.raises(KossimInputError) as err:
        load_experiment(_experiment(tmp_path, "{csv: events.csv}"))
    assert "row 3" in str(err.value) and "events.csv" in str(err.value)


def test_kill_by_node_takes_down_every_agent_on_it() -> None:
    """A kill of a node takes down every agent on it."""
    cfg = config(
        horizon=6.0,
        agents=[{"group": "a", "count": 2, "node": "n1"}, {"group": "b", "count": 1}],
        nodes=[{"name": "n1"}],
        network={"latency": constant(0.0)},
    )
    cfg["scenario"]["timeline"] = [{"at": 2, "kind": "kill", "nodes": ["n1"]}]
    world, _ = _run(cfg)
    assert [bool(a.crash_times) for a in world.agents] == [True, True, False]


def _readme_block(start: str, lang: str = "yaml") -> str:
    import re

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    return next(b for b in re.findall(rf"```{lang}\n(.*?)```", readme, re.S) if start in b)


@pytest.mark.parametrize("name", ["timeline-example", "network-faults-example"])
def test_the_readme_examples_run(name: str, tmp_path: Path) -> None:
    """The README's timeline and network-faults experiments are valid and run."""
    from kossim.lab.plan import make_plan

    path = tmp_path / f"{name}.yaml"
    path.write_text(_readme_block(f"name: {name}"))
    plan = make_plan(load_experiment(path, ["seeds=1"]))
    for spec in plan.specs:
        result = simulate(spec)
        assert result.status == "ok", result.error
        m = {(k, s): v for k, s, v in result.metrics}
        assert m[("lost", "all")] == 0


def test_the_readme_csv_timeline_loads(tmp_path: Path) -> None:
    """The README's CSV rows are the same events as its YAML ones."""
    (tmp_path / "events.csv").write_text(_readme_block("at,kind,until", "text"))
    loaded = load_experiment(_experiment(tmp_path, "{csv: events.csv}"))
    from kossim.config.timeline import timeline_events

    events = timeline_events(loaded.experiment.scenario.timeline)
    assert [(e.kind, e.at, e.until) for e in events] == [("surge", 100, 150), ("kill", 160, 180)]
    assert events[1].agents == ["w-0", "w-1"]


def test_a_link_change_delays_messages_for_its_period() -> None:
    """On an instant network a link's latency set to 0.5 from 5 to 10 delays the tasks sent
    there by 0.5 (start - arrival), before and after not at all (push: the agent's reports
    hold nothing up)."""
    cfg = config(horizon=14.5, work=0.1, policy={"dispatch": "push"})
    cfg["scenario"]["timeline"] = [
        {"at": 5, "kind": "link", "a": "coordinator", "b": "w-0", "until": 10,
         "latency": constant(0.5)},
    ]  # fmt: skip
    _, cols = _run(cfg)
    waits = dict(
        zip(cols["arrival"].tolist(), (cols["start"] - cols["arrival"]).tolist(), strict=True)
    )
    assert [waits[t] for t in range(1, 15)] == pytest.approx([0.0] * 4 + [0.5] * 5 + [0.0] * 5)
