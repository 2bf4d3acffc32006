"""YAML loading with positions, located validation errors, dotted paths and ``--set``."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Annotated, Any, Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from kossim.config.loader import (
    FieldError,
    SourceMap,
    did_you_mean,
    get_path,
    load_yaml,
    load_yaml_text,
    parse_set,
    set_path,
    validation_problems,
)
from kossim.errors import UNSET, InputProblem, KossimInputError

# --- a small model tree standing in for the experiment models ------------------------------


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Exponential(Strict):
    dist: Literal["exponential"]
    mean: float = Field(gt=0)


class Constant(Strict):
    dist: Literal["constant"]
    value: float = Field(ge=0)


Dist = Annotated[Exponential | Constant, Field(discriminator="dist")]


class Group(Strict):
    group: str
    count: int = Field(default=1, ge=1)
    speed: float = Field(default=1.0, gt=0)


class Arrivals(Strict):
    process: Literal["poisson", "renewal"] = "poisson"
    rate: float = Field(gt=0)


class Task(Strict):
    type: str
    work: Dist


class Workload(Strict):
    arrivals: Arrivals
    tasks: list[Task]


class Ref(Strict):
    id: str
    d: int = 2


class Lab(Strict):
    name: str
    agents: list[Group]
    workload: Workload
    routing: str | Ref = "random"

    @model_validator(mode="after")
    def _unique_groups(self) -> Lab:
        groups = [g.group for g in self.agents]
        if len(set(groups)) < len(groups):
            raise ValueError("agent groups must be unique")
        return self


GOOD = """\
name: lab
agents:
  - group: worker
    count: 4
  - {group: boss, speed: 2.0}
workload:
  arrivals:
    process: poisson
    rate: 7.5
  tasks:
    - type: job
      work: {dist: exponential, mean: 1.0}
routing: {id: power_of_d, d: 2}
"""


def broken(old: str, new: str) -> str:
    assert old in GOOD, old
    return GOOD.replace(old, new, 1)


def problems(text: str, **options: Any) -> list[str]:
    """Validate ``text`` as a Lab and return the located problem lines."""
    data, source = load_yaml_text(text, "x.yaml")
    options.setdefault("data", data)
    options.setdefault("model", Lab)
    with pytest.raises(ValidationError) as info:
        Lab.model_validate(data)
    return [str(p) for p in validation_problems(info.value, source, **options)]


def load_error(text: str) -> str:
    with pytest.raises(KossimInputError) as info:
        load_yaml_text(text, "x.yaml")
    return str(info.value)


# --- validation errors ---------------------------------------------------------------------


def test_good_document_validates() -> None:
    """The base document is valid, so each test below breaks exactly one thing."""
    data, _ = load_yaml_text(GOOD, "x.yaml")
    assert Lab.model_validate(data).workload.arrivals.rate == 7.5


def test_wrong_type() -> None:
    """A value of the wrong type is reported at its key with the value found."""
    assert problems(broken("count: 4", "count: many")) == [
        "x.yaml:4:5: agents.0.count: Input should be a valid integer, "
        "unable to parse string as an integer (got 'many')"
    ]


def test_unknown_field_lists_allowed_names() -> None:
    """An unknown field names the fields the model accepts, with a near miss."""
    assert problems(broken("speed: 2.0", "sped: 2.0")) == [
        "x.yaml:5:19: agents.1.sped: unknown field 'sped'; allowed: group, count, speed "
        "(did you mean 'speed'?)"
    ]


def test_unknown_field_inside_a_tagged_union_member() -> None:
    """The tag segment in pydantic's loc selects the member whose fields are listed."""
    assert problems(broken("mean: 1.0", "mean: 1.0, sd: 2")) == [
        "x.yaml:12:44: workload.tasks.0.work.sd: unknown field 'sd'; allowed: dist, mean"
    ]


def test_unknown_field_without_a_model() -> None:
    """Without the model class the message still names the field."""
    assert problems(broken("speed: 2.0", "sped: 2.0"), model=None) == [
        "x.yaml:5:19: agents.1.sped: unknown field 'sped'"
    ]


def test_allowed_fields_callback_gets_the_model_loc() -> None:
    """A callback may supply the allowed names, given the loc of the model."""
    seen: list[tuple[str | int, ...]] = []

    def allowed(loc: tuple[str | int, ...]) -> list[str]:
        seen.append(loc)
        return ["group", "speed"]

    lines = problems(broken("speed: 2.0", "sped: 2.0"), allowed_fields=allowed)
    assert lines == [
        "x.yaml:5:19: agents.1.sped: unknown field 'sped'; allowed: group, speed "
        "(did you mean 'speed'?)"
    ]
    assert seen == [("agents", 1)]


def test_negative_number_with_gt_zero() -> None:
    """A constraint failure shows pydantic's message and the value."""
    assert problems(broken("rate: 7.5", "rate: -1")) == [
        "x.yaml:9:5: workload.arrivals.rate: Input should be greater than 0 (got -1)"
    ]


def test_bad_literal_lists_allowed_values() -> None:
    """A bad literal lists the allowed values and suggests the closest."""
    assert problems(broken("process: poisson", "process: poison")) == [
        "x.yaml:8:5: workload.arrivals.process: Input should be 'poisson' or 'renewal' "
        "(did you mean 'poisson'?) (got 'poison')"
    ]


def test_unknown_union_tag_lists_expected_tags() -> None:
    """An unknown tag is reported at the tag key, with the expected tags."""
    assert problems(broken("dist: exponential", "dist: exponentail")) == [
        "x.yaml:12:14: workload.tasks.0.work.dist: Input should be one of 'exponential', "
        "'constant' (did you mean 'exponential'?) (got 'exponentail')"
    ]


def test_missing_tag_is_reported_at_the_union_value() -> None:
    """A mapping without its tag key is reported where the mapping is."""
    assert problems(broken("{dist: exponential, mean: 1.0}", "{mean: 1.0}")) == [
        "x.yaml:12:7: workload.tasks.0.work.dist: Field required; "
        "expected one of 'exponential', 'constant'"
    ]


def test_missing_field_is_reported_at_its_parent() -> None:
    """A missing field points at the mapping that should hold it."""
    assert problems(broken("    rate: 7.5\n", "")) == [
        "x.yaml:7:3: workload.arrivals.rate: Field required"
    ]


def test_missing_field_in_a_list_item() -> None:
    """In a list, the parent is the item itself."""
    assert problems(broken("- type: job", "- tipe: job")) == [
        "x.yaml:11:7: workload.tasks.0.type: Field required",
        "x.yaml:11:7: workload.tasks.0.tipe: unknown field 'tipe'; allowed: type, work "
        "(did you mean 'type'?)",
    ]


def test_union_member_that_got_further_wins() -> None:
    """For ``str | Ref``, a mapping input reports Ref's complaint, not "not a string"."""
    assert problems(broken("{id: power_of_d, d: 2}", "{id: 3, d: 2}")) == [
        "x.yaml:13:11: routing.id: Input should be a valid string (got 3)"
    ]


def test_union_members_failing_at_the_same_value_are_joined() -> None:
    """When no member gets into the value, their complaints are joined with "or"."""
    assert problems(broken("{id: power_of_d, d: 2}", "[1]")) == [
        "x.yaml:13:1: routing: Input should be a valid string; or Input should be a valid "
        "dictionary or instance of Ref (got [1])"
    ]


def test_model_validator_message_without_prefix() -> None:
    """A ValueError from a validator reads as its own message, at the model's position."""
    assert problems(broken("group: boss", "group: worker")) == [
        "x.yaml:1:1: agent groups must be unique"
    ]


def test_source_map_stands_in_for_data() -> None:
    """Without ``data``, the keys in the source map decide which loc segments are data."""
    text = broken("dist: exponential", "dist: exponentail")
    assert problems(text, data=UNSET) == problems(text)


def test_key_added_after_loading_is_found_with_data() -> None:
    """A key set by ``--set`` is in the data, not the map: it is placed at its parent."""
    data, source = load_yaml_text(GOOD, "x.yaml")
    set_path(data, "workload.arrivals.burst", 3)
    with pytest.raises(ValidationError) as info:
        Lab.model_validate(data)
    lines = [str(p) for p in validation_problems(info.value, source, data=data, model=Lab)]
    assert lines == [
        "x.yaml:7:3: workload.arrivals.burst: unknown field 'burst'; allowed: process, rate"
    ]


def test_prefix_places_a_separately_validated_part() -> None:
    """A component validated on its own is located under its path in the document."""
    data, source = load_yaml_text(broken("d: 2}", "dd: 2}"), "x.yaml")
    with pytest.raises(ValidationError) as info:
        Ref.model_validate(data["routing"])
    lines = validation_problems(info.value, source, data=data, model=Ref, prefix=("routing",))
    assert [str(p) for p in lines] == [
        "x.yaml:13:27: routing.dd: unknown field 'dd'; allowed: id, d (did you mean 'd'?)"
    ]


def test_file_argument_overrides_the_source_file() -> None:
    """``file`` names the file in messages when the map was loaded under another name."""
    lines = problems(broken("rate: 7.5", "rate: 0"), file="experiments/lab.yaml")
    assert lines == [
        "experiments/lab.yaml:9:5: workload.arrivals.rate: Input should be greater than 0 (got 0)"
    ]


# --- YAML errors ---------------------------------------------------------------------------


def test_yaml_syntax_error() -> None:
    """A syntax error names the position of the problem and what was being parsed."""
    text = broken("{dist: exponential, mean: 1.0}", "{dist: exponential, mean: 1.0")
    assert load_error(text) == (
        "x.yaml:13:8: invalid YAML: expected ',' or '}', but got ':' "
        "(while parsing a flow mapping that starts at 12:13)"
    )


def test_yaml_error_without_context() -> None:
    assert (
        load_error("a: b: c\n") == "x.yaml:1:5: invalid YAML: mapping values are not allowed here"
    )


def test_duplicate_key() -> None:
    """A duplicate key is an error at the second occurrence."""
    assert load_error(broken("    count: 4\n", "    count: 4\n    count: 5\n")) == (
        "x.yaml:5:5: duplicate key 'count' (in the mapping that starts at 3:5)"
    )


def test_recursive_alias() -> None:
    assert load_error("&x {b: *x}\n") == "x.yaml:1:5: b: recursive YAML alias"


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(KossimInputError) as info:
        load_yaml(path)
    assert str(info.value) == f"{path}: file not found"


def test_load_yaml_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "lab.yaml"
    path.write_text(GOOD, encoding="utf-8")
    data, source = load_yaml(path)
    assert data["routing"] == {"id": "power_of_d", "d": 2}
    assert source.file == str(path)


# --- plain data and positions --------------------------------------------------------------


def test_loaded_data_is_plain_python() -> None:
    """No ruamel subclasses survive: exact builtin types, picklable, equal after a round trip."""
    data, _ = load_yaml_text("f: 1.5\nh: 0x1F\nb: true\ns: |\n  hi\nl: [1, {k: v}]\nn: ~\n")
    assert data == {"f": 1.5, "h": 31, "b": True, "s": "hi\n", "l": [1, {"k": "v"}], "n": None}
    assert [type(v) for v in data.values()] == [float, int, bool, str, list, type(None)]
    assert type(data["l"][1]) is dict
    assert pickle.loads(pickle.dumps(data)) == data


def test_merge_keys_are_placed_at_the_merging_mapping() -> None:
    data, source = load_yaml_text("base: &b {x: 1}\nm:\n  <<: *b\n  z: 3\n")
    assert data["m"] == {"z": 3, "x": 1}
    assert source.locate(("m", "x")) == (2, 1)


def test_source_map_locates_the_deepest_existing_prefix() -> None:
    _, source = load_yaml_text(GOOD, "x.yaml")
    assert source.locate(("workload", "arrivals", "rate")) == (9, 5)
    assert source.locate(("workload", "arrivals", "burst", "x")) == (7, 3)
    assert source.locate(("agents", 1)) == (5, 5)
    assert source.locate(("agents", 1, "speed")) == (5, 19)
    assert source.locate(()) == (1, 1)
    assert (
        str(source.problem(("agents", 7), "no such group")) == "x.yaml:2:1: agents.7: no such group"
    )


# --- dotted paths --------------------------------------------------------------------------


def lab_data() -> Any:
    return load_yaml_text(GOOD)[0]


def test_get_path_by_name_and_index() -> None:
    data = lab_data()
    assert get_path(data, "agents.worker.count") == 4
    assert get_path(data, "agents.1.speed") == 2.0
    assert get_path(data, "agents.-1.group") == "boss"
    assert get_path(data, "workload.tasks.job.work.mean") == 1.0
    assert get_path(data, "routing.d") == 2


def test_set_path_by_name_and_index() -> None:
    data = lab_data()
    set_path(data, "agents.boss.count", 3)
    set_path(data, "agents.0.speed", 0.5)
    set_path(data, "workload.tasks.job.work.mean", 2.0)
    assert data["agents"] == [
        {"group": "worker", "count": 4, "speed": 0.5},
        {"group": "boss", "speed": 2.0, "count": 3},
    ]
    assert data["workload"]["tasks"][0]["work"] == {"dist": "exponential", "mean": 2.0}


def test_set_path_into_a_bare_component_id() -> None:
    """``routing: power_of_d`` becomes ``{id: power_of_d, d: ...}`` when a path goes into it."""
    data: dict[str, Any] = {"policies": [{"name": "pod2", "routing": "power_of_d"}]}
    assert get_path(data, "policies.pod2.routing.id") == "power_of_d"
    set_path(data, "policies.pod2.routing.d", 3)
    assert data["policies"][0]["routing"] == {"id": "power_of_d", "d": 3}


def test_set_path_creates_missing_mappings() -> None:
    data: dict[str, Any] = {"name": "lab", "failures": None}
    set_path(data, "seeds", 3)
    set_path(data, "failures.agents.up.mean", 100)
    assert data == {"name": "lab", "failures": {"agents": {"up": {"mean": 100}}}, "seeds": 3}


def test_sweep_keys_are_dotted_paths() -> None:
    """Under ``sweep`` the rest of the path is one key."""
    data: dict[str, Any] = {}
    set_path(data, "sweep.workload.arrivals.rate", [6.0, 7.2])
    assert data == {"sweep": {"workload.arrivals.rate": [6.0, 7.2]}}
    assert get_path(data, "sweep.workload.arrivals.rate") == [6.0, 7.2]


def path_error(call: Any, *args: Any) -> str:
    with pytest.raises(KossimInputError) as info:
        call(*args)
    return str(info.value)


def test_unknown_list_item_lists_names() -> None:
    assert path_error(get_path, lab_data(), "agents.wroker.count") == (
        "agents.wroker: no item 'wroker'; available: worker, boss (did you mean 'worker'?)"
    )
    assert path_error(set_path, lab_data(), "agents.wroker.count", 1) == (
        "agents.wroker: no item 'wroker'; available: worker, boss (did you mean 'worker'?)"
    )


def test_unknown_field_in_get_path_lists_names() -> None:
    assert path_error(get_path, lab_data(), "workload.arivals.rate") == (
        "workload.arivals: no field 'arivals'; available: arrivals, tasks "
        "(did you mean 'arrivals'?)"
    )


def test_index_out_of_range_and_scalars() -> None:
    assert path_error(get_path, lab_data(), "agents.5") == (
        "agents: index 5 is out of range (2 items)"
    )
    assert path_error(set_path, lab_data(), "agents.worker.count.x", 1) == (
        "agents.worker.count: not a mapping or list (got 4)"
    )


# --- --set ---------------------------------------------------------------------------------


def test_parse_set_reads_the_value_as_yaml() -> None:
    assert parse_set("seeds=3") == ("seeds", 3)
    assert parse_set("scenario.workload.arrivals.rate=7.5") == (
        "scenario.workload.arrivals.rate",
        7.5,
    )
    assert parse_set("sweep.x=[1,2]") == ("sweep.x", [1, 2])
    assert parse_set(" routing = power_of_d") == ("routing", "power_of_d")
    assert parse_set("routing={id: power_of_d, d: 2}") == ("routing", {"id": "power_of_d", "d": 2})
    assert parse_set("horizon=") == ("horizon", None)


def test_parse_set_errors() -> None:
    assert path_error(parse_set, "seeds") == "--set expects PATH=VALUE (got 'seeds')"
    assert path_error(parse_set, "a..b=1") == "not a dotted path (got 'a..b')"
    assert path_error(parse_set, "x=[1,") == (
        "x: cannot read the value as YAML: invalid YAML: expected the node content, "
        "but found '<stream end>' (while parsing a flow node) (got '[1,')"
    )


# --- errors and hints ----------------------------------------------------------------------


def test_did_you_mean() -> None:
    assert did_you_mean("power_of_dd", ["random", "power_of_d"]) == " (did you mean 'power_of_d'?)"
    assert did_you_mean("zzz", ["random", "power_of_d"]) == ""


def test_problem_rendering() -> None:
    """Parts that are unknown are left out; ``None`` shows as YAML's null; long values are cut."""
    assert str(InputProblem(None, None, None, "", "bad")) == "bad"
    assert str(InputProblem("a.yaml", 3, None, "x", "bad", None)) == "a.yaml:3: x: bad (got null)"
    long = InputProblem("a.yaml", 1, 1, "x", "bad", "y" * 100)
    assert str(long) == f"a.yaml:1:1: x: bad (got '{'y' * 56}...)"


def test_input_error_lines_and_pickling() -> None:
    """One line per problem; the error survives a trip to a worker process and back."""
    error = KossimInputError(
        [
            InputProblem("x.yaml", 12, 5, "scenario.workload.arrivals.rate", "too small", -1),
            InputProblem("x.yaml", 2, 1, "seeds", "Field required"),
        ]
    )
    expected = (
        "x.yaml:12:5: scenario.workload.arrivals.rate: too small (got -1)\n"
        "x.yaml:2:1: seeds: Field required"
    )
    assert str(error) == expected
    again = pickle.loads(pickle.dumps(error))
    assert str(again) == expected
    assert again.problems[1].got is UNSET
    assert KossimInputError.exit_code == 2
    assert (
        str(KossimInputError.single("bad", file="a.yaml", line=1, path="p")) == "a.yaml:1: p: bad"
    )
    with pytest.raises(ValueError):
        KossimInputError([])


def test_empty_source_map_has_no_position() -> None:
    assert SourceMap().locate(("a",)) is None
    assert str(SourceMap().problem(("a", 0), "bad", 1)) == "a.0: bad (got 1)"


def test_loader_re_exports_the_split_modules() -> None:
    """``kossim.config.loader`` still offers the names that moved to ``paths`` and ``problems``."""
    from kossim.config import loader, paths, problems

    assert loader.get_path is paths.get_path
    assert loader.parse_set is paths.parse_set
    assert loader.format_path is paths.format_path
    assert loader.validation_problems is problems.validation_problems
    assert loader.did_you_mean is problems.did_you_mean
    assert set(paths.__all__) | set(problems.__all__) <= set(loader.__all__)


# --- placing a model check's complaint, and values that came from elsewhere ---------------


class Window(Strict):
    low: float = 0.0
    high: float
    tasks: list[Task] = []

    @model_validator(mode="after")
    def _ordered(self) -> Window:
        if self.high < self.low:
            raise FieldError(f"high must be >= low ({self.low})", "high", got=self.high)
        for index, task in enumerate(self.tasks):
            if task.type == "bad":
                raise FieldError("no task may be 'bad'", "tasks", index, "type")
        return self


def window_problems(text: str) -> list[str]:
    data, source = load_yaml_text(text, "w.yaml")
    with pytest.raises(ValidationError) as info:
        Window.model_validate(data)
    return [str(p) for p in validation_problems(info.value, source, data=data, model=Window)]


def test_field_error_is_placed_at_its_field() -> None:
    """A model check raising FieldError is reported at the field it names, not the model."""
    assert window_problems("low: 2\nhigh: 1\n") == [
        "w.yaml:2:1: high: high must be >= low (2.0) (got 1.0)"
    ]
    text = "high: 1\ntasks:\n  - {type: ok, work: {dist: constant, value: 1}}\n"
    text += "  - {type: bad, work: {dist: constant, value: 1}}\n"
    assert window_problems(text) == ["w.yaml:4:6: tasks.1.type: no task may be 'bad'"]


def test_field_error_pickles() -> None:
    error = pickle.loads(pickle.dumps(FieldError("bad", "tasks", 1, got=3)))
    assert (str(error), error.at, error.got) == ("bad", ("tasks", 1), 3)


def test_origin_by_name_replaces_file_and_position() -> None:
    """A value set by ``--set`` is reported as coming from ``--set``, not from a file line."""
    data, source = load_yaml_text(GOOD, "x.yaml")
    where = set_path(data, "workload.arrivals.rate", -1)
    assert where == ("workload", "arrivals", "rate")
    source = source.with_origin(where, "--set")
    with pytest.raises(ValidationError) as info:
        Lab.model_validate(data)
    lines = [str(p) for p in validation_problems(info.value, source, data=data, model=Lab)]
    assert lines == ["--set: workload.arrivals.rate: Input should be greater than 0 (got -1)"]
    assert str(source.problem(("workload",), "other")) == "x.yaml:6:1: workload: other"


def test_origin_in_the_document_moves_the_position() -> None:
    """A swept value is reported at the sweep entry it came from, under its own path."""
    data, source = load_yaml_text(GOOD + "sweep:\n  agents.boss.speed: [1.0, -2.0]\n", "x.yaml")
    where = set_path(data, "agents.boss.speed", -2.0)
    source = source.with_origin(where, ("sweep", "agents.boss.speed", 1))
    problem = source.problem(("agents", 1, "speed"), "Input should be greater than 0", -2.0)
    assert str(problem) == "x.yaml:15:28: agents.1.speed: Input should be greater than 0 (got -2.0)"


def test_set_path_returns_the_first_new_mapping() -> None:
    """What ``set_path`` created is what a problem below it is traced to."""
    data = lab_data()
    assert set_path(data, "workload.arivals.rate", 1) == ("workload", "arivals")
    assert set_path(data, "agents.boss.count", 3) == ("agents", 1, "count")
    assert set_path(data, "sweep.workload.arrivals.rate", [1]) == ("sweep",)
