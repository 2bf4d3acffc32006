"""Expanding an experiment into runs: grid and zip sweeps, stable run ids."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from kossim.config.experiment import LoadedExperiment, validate_data
from kossim.config.loader import SourceMap
from kossim.errors import KossimInputError
from kossim.lab.plan import Plan, make_plan, run_config, sweep_points

RATE = "scenario.workload.arrivals.rate"
COUNT = "scenario.agents.worker.count"


def plan_of(data: dict[str, Any], **kw: Any) -> Plan:
    loaded = LoadedExperiment(validate_data(data, SourceMap()), data, SourceMap(), None)
    return make_plan(loaded, **kw)


def test_grid_is_the_cartesian_product_in_file_order() -> None:
    """Later axes vary fastest, values keep their order."""
    points = sweep_points({RATE: [1, 2], "policies.pod.routing.d": [2, 3, 4]})
    assert points == [((RATE, 1), ("policies.pod.routing.d", d)) for d in (2, 3, 4)] + [
        ((RATE, 2), ("policies.pod.routing.d", d)) for d in (2, 3, 4)
    ]


def test_zip_varies_its_paths_together_as_one_axis() -> None:
    """A zip group is one axis: its lists pair up element by element."""
    points = sweep_points({"seeds_unused": ["a"], "zip": {COUNT: [2, 4], RATE: [1.5, 3.0]}})
    assert points == [
        (("seeds_unused", "a"), (COUNT, 2), (RATE, 1.5)),
        (("seeds_unused", "a"), (COUNT, 4), (RATE, 3.0)),
    ]
    with pytest.raises(ValueError, match="equal length"):
        sweep_points({"zip": {COUNT: [2, 4], RATE: [1.5]}})


def test_runs_cover_policies_points_and_seeds(tiny_data: dict[str, Any]) -> None:
    """Policy-major, then point, then seed; each run's config holds only its policy."""
    tiny_data["sweep"] = {"zip": {COUNT: [2, 4], RATE: [1.5, 3.0]}}
    plan = plan_of(tiny_data)
    assert plan.swept == [COUNT, RATE]
    assert [(s.policy, s.point[0][1], s.seed) for s in plan.specs[:4]] == [
        ("central", 2, 0), ("central", 2, 1), ("central", 2, 2), ("central", 4, 0),
    ]  # fmt: skip
    spec = plan.specs[3]
    assert spec.config["scenario"]["agents"][0]["count"] == 4
    assert spec.config["scenario"]["workload"]["arrivals"]["rate"] == 3.0
    assert [p["name"] for p in spec.config["policies"]] == ["central"]
    assert "seeds" not in spec.config and "sweep" not in spec.config


def test_run_ids_survive_more_seeds_and_more_policies(tiny_data: dict[str, Any]) -> None:
    """What resume relies on: adding seeds or a policy keeps the ids of runs already planned."""
    before = {s.run_id for s in plan_of(tiny_data).specs}
    more = copy.deepcopy(tiny_data)
    more["seeds"] = 5
    more["policies"].append({"name": "jsq", "dispatch": "push", "routing": "jsq"})
    after = {s.run_id for s in plan_of(more).specs}
    assert before < after
    assert len(after) == 3 * 2 * 5


def test_sweeping_a_component_parameter_of_a_bare_id(tiny_data: dict[str, Any]) -> None:
    """``policies.random.routing.d`` turns ``routing: random`` into a mapping; bad values fail."""
    tiny_data["policies"][1] = {"name": "pod", "dispatch": "push", "routing": "power_of_d"}
    tiny_data["sweep"] = {"policies.pod.routing.d": [2, 3]}
    plan = plan_of(tiny_data)
    pod = [s for s in plan.specs if s.policy == "pod"]
    assert {s.config["policies"][0]["routing"]["d"] for s in pod} == {2, 3}
    tiny_data["sweep"] = {"policies.pod.routing.d": [2, 0]}
    with pytest.raises(KossimInputError, match="greater than or equal to 1"):
        plan_of(tiny_data)


def test_equal_sweep_values_are_an_error_after_normalising_numbers(
    tiny_data: dict[str, Any],
) -> None:
    """``[3, 3.0]`` would run one point twice and pool its seeds: each repeat is reported."""
    tiny_data["sweep"] = {RATE: [3, 2.5, 3.0, 2.5]}
    with pytest.raises(KossimInputError) as info:
        plan_of(tiny_data)
    assert [(p.path, p.got) for p in info.value.problems] == [
        (f"sweep.{RATE}.2", 3.0),
        (f"sweep.{RATE}.3", 2.5),
    ]
    tiny_data["sweep"] = {RATE: [True, 1]}  # a flag and a number are not one value
    with pytest.raises(KossimInputError, match="valid number"):
        plan_of(tiny_data)


def test_a_zip_point_repeated_is_an_error(tiny_data: dict[str, Any]) -> None:
    """Zip lists may repeat a value; a whole zip point may not."""
    tiny_data["sweep"] = {"zip": {COUNT: [2, 4, 2], RATE: [1.5, 1.5, 1.5]}}
    with pytest.raises(KossimInputError) as info:
        plan_of(tiny_data)
    assert [p.path for p in info.value.problems] == [f"sweep.zip.{COUNT}.2"]
    tiny_data["sweep"] = {"zip": {COUNT: [2, 4, 2], RATE: [1.5, 1.5, 3.0]}}
    assert len(plan_of(tiny_data).points) == 3


def test_one_field_swept_twice_is_an_error_whatever_the_spelling(
    tiny_data: dict[str, Any],
) -> None:
    """By name or by index, in the grid or in zip, or a field inside a swept mapping."""
    for sweep in (
        {COUNT: [2, 3], "zip": {"scenario.agents.0.count": [4, 5], RATE: [1.0, 2.0]}},
        {"scenario.workload.arrivals": [{"process": "poisson", "rate": 1.0}], RATE: [1.0]},
    ):
        tiny_data["sweep"] = sweep
        with pytest.raises(KossimInputError, match="sweep each field in one place"):
            plan_of(tiny_data)


def test_fields_that_are_no_run_input_cannot_be_swept(tiny_data: dict[str, Any]) -> None:
    """A policy's name keys its results; seeds and the name are not sweep axes."""
    for path in ("policies.random.name", "policies.1", "seeds", "name"):
        tiny_data["sweep"] = {path: ["a", "b"]}
        with pytest.raises(KossimInputError, match=f"cannot sweep '{path}'"):
            plan_of(tiny_data)


def test_run_inputs_cover_data_files_and_components_not_built_in(
    tiny_data: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Built-ins are in the engine fingerprint; files, user and plugin components are here."""
    from kossim import registry
    from kossim.datafiles import file_digest
    from kossim.lab.plan import run_inputs
    from tests.plugins import Exploding

    monkeypatch.setitem(registry._REGISTRY, "routing", dict(registry.available("routing")))
    registry.register(Exploding)  # as an entry-point plugin would
    data = tmp_path / "work.csv"
    data.write_text("1.0\n2.0\n")
    tiny_data["scenario"]["workload"]["tasks"][0]["work"] = {"dist": "empirical", "file": str(data)}
    plain = plan_of(copy.deepcopy(tiny_data))
    assert run_inputs(plain.specs[0].config) == {f"file:{data}": file_digest(data)}
    tiny_data["policies"][1]["routing"] = {"id": "exploding", "seed": 9}
    tiny_data["policies"].append(
        {"name": "user", "dispatch": "push", "routing": "tests.plugins:Exploding"}
    )
    inputs = run_inputs(run_config(tiny_data, (), "random"))
    source = file_digest(Path(__file__).resolve().parents[1] / "plugins.py")
    assert inputs == {"component:routing:exploding": source, f"file:{data}": file_digest(data)}
    assert (
        run_inputs(run_config(tiny_data, (), "user"))["component:routing:tests.plugins:Exploding"]
        == source
    )
