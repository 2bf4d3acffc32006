"""Broken experiment files: ``kossim validate`` exits 2 with a located message, never a traceback.

Every file in ``tests/data/bad/`` is ``valid.yaml`` with one thing broken (its
first line says what). Each case pins the first problem line exactly:
``file:line:col: field.path: message``, with what is allowed where there is a
closed set.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kossim.cli import app
from kossim.registry import available
from kossim.report.metrics_meta import METRIC_DIRECTION

BAD = Path(__file__).resolve().parents[1] / "data" / "bad"
DISTS = (
    "'constant', 'exponential', 'uniform', 'normal', 'lognormal', 'gamma', "
    "'hyperexponential', 'erlang', 'empirical'"
)


@dataclass(frozen=True)
class Bad:
    """One broken input and the first problem line ``kossim validate`` prints for it.

    ``first`` may use ``{file}`` (the file's path as given), ``{bad}`` (the
    folder of broken files), ``{modules}`` (the folder of the case's component
    modules), ``{routing}`` (the registered routing ids) and ``{metrics}`` (every
    metric name ``expect:`` knows). ``modules`` names broken component modules
    (see :data:`MODULES`) importable for the case.
    """

    id: str
    file: str
    first: str
    args: tuple[str, ...] = ()
    modules: tuple[str, ...] = ()


MODULES = {
    "kossim_bad_raises": 'raise RuntimeError("the license server is unreachable")\n',
    "kossim_bad_syntax": "def select(self, task\n",
}
"""Broken user component modules, written next to the cases that name them."""

CASES = [
    Bad(
        "wrong_type",
        "wrong_type.yaml",
        "{file}:8:22: scenario.agents.0.count: Input should be a valid integer (got 'many')",
    ),
    Bad(
        "unknown_field",
        "unknown_field.yaml",
        "{file}:8:32: scenario.agents.0.sped: unknown field 'sped'; allowed: group, count, "
        "speed, capacity, skills, trust, bad_results, node, queue_limit, roles, learning, "
        "pause, slowdown "
        "(did you mean 'speed'?)",
    ),
    Bad(
        "negative_rate",
        "negative_rate.yaml",
        "{file}:10:34: scenario.workload.arrivals.rate: Input should be greater than 0 (got -3.0)",
    ),
    Bad(
        "unknown_routing",
        "unknown_routing.yaml",
        "{file}:15:34: policies.1.routing: unknown routing id 'power_of_2' "
        "(did you mean 'power_of_d'?); allowed: {routing} (got 'power_of_2')",
    ),
    Bad(
        "misspelt_dist",
        "misspelt_dist.yaml",
        f"{{file}}:12:53: scenario.workload.tasks.0.work.dist: Input should be one of {DISTS} "
        "(did you mean 'exponential'?) (got 'exponentail')",
    ),
    Bad(
        "bad_param",
        "bad_param.yaml",
        "{file}:15:60: policies.1.routing.d: routing 'power_of_d': Input should be greater "
        "than or equal to 1; parameters: d (got 0)",
    ),
    Bad(
        "missing_arrivals",
        "missing_arrivals.yaml",
        "{file}:9:3: scenario.workload.arrivals: Field required",
    ),
    Bad(
        "syntax",
        "syntax.yaml",
        "{file}:13:1: invalid YAML: expected ',' or '}', but got '<scalar>' "
        "(while parsing a flow mapping that starts at 12:9)",
    ),
    Bad(
        "duplicate_key",
        "duplicate_key.yaml",
        "{file}:4:1: duplicate key 'seeds' (in the mapping that starts at 2:1)",
    ),
    Bad(
        "impossible",
        "impossible.yaml",
        "{file}:12:46: scenario.workload.tasks.0.skills: task type 'job' needs skills "
        "['vision'] that no agent group has together (groups offer [['general']])",
    ),
    Bad(
        "horizon_and_tasks",
        "horizon_and_tasks.yaml",
        "{file}:5:1: tasks: give exactly one of 'horizon' (time) or 'tasks' (count)",
    ),
    Bad(
        "bad_sweep_path",
        "bad_sweep_path.yaml",
        "{file}:17:36: scenario.workload.arivals: unknown field 'arivals'; allowed: arrivals, "
        "tasks (did you mean 'arrivals'?) [at sweep point scenario.workload.arivals.rate=1.0]",
    ),
    Bad(
        "bad_sweep_value",
        "bad_sweep_value.yaml",
        "{file}:17:42: scenario.workload.arrivals.rate: Input should be greater than 0 "
        "[at sweep point scenario.workload.arrivals.rate=-1.0] (got -1.0)",
    ),
    Bad(
        "sweep_repeated_value",
        "sweep_repeated_value.yaml",
        "{file}:17:45: sweep.scenario.workload.arrivals.rate.2: repeats item 0 (3); equal "
        "sweep values would pool as extra seeds (got 3.0)",
    ),
    Bad(
        "sweep_grid_and_zip",
        "sweep_grid_and_zip.yaml",
        "{file}:20:5: sweep.zip.scenario.workload.arrivals.rate: "
        "'scenario.workload.arrivals.rate' is also swept in the grid at line 17; sweep each "
        "field in one place",
    ),
    Bad(
        "sweep_policy_name",
        "sweep_policy_name.yaml",
        "{file}:17:3: sweep.policies.pod2.name: cannot sweep 'policies.pod2.name': a policy's "
        "name identifies it in the results; sweep one of its components "
        "(policies.NAME.routing, ...) instead",
    ),
    Bad(
        "count_bool",
        "count_bool.yaml",
        "{file}:8:22: scenario.agents.0.count: Input should be a valid integer (got true)",
    ),
    Bad(
        "duplicate_policy",
        "duplicate_policy.yaml",
        "{file}:15:6: policies.1.name: duplicate policy name 'central'",
    ),
    Bad(
        "duplicate_seed",
        "duplicate_seed.yaml",
        "{file}:3:15: seeds.2: duplicate seed (got 1)",
    ),
    Bad(
        "warmup_past_horizon",
        "warmup_past_horizon.yaml",
        "{file}:5:1: warmup: must be below horizon (50) (got 50.0)",
    ),
    Bad(
        "priority_overflow",
        "priority_overflow.yaml",
        "{file}:12:33: scenario.workload.tasks.0.priority: Input should be less than or "
        "equal to 32767 (got 40000)",
    ),
    Bad(
        "seed_overflow",
        "seed_overflow.yaml",
        "{file}:3:9: seeds.0: Input should be less than or equal to 9223372036854775807 "
        "(got 9223372036854775808)",
    ),
    Bad(
        "expect_unknown_policy",
        "expect_unknown_policy.yaml",
        "{file}:17:28: expect.0.better: unknown policy 'pod3'; policies: central, pod2 "
        "(did you mean 'pod2'?)",
    ),
    Bad(
        "expect_unknown_metric",
        "expect_unknown_metric.yaml",
        "{file}:17:6: expect.0.metric: unknown metric 'sojourn_man'; metrics: "
        "{metrics} "
        "(did you mean 'sojourn_mean'?)",
    ),
    Bad(
        "node_coordinator",
        "node_coordinator.yaml",
        "{file}:6:12: scenario.nodes.0.name: node name 'coordinator' is reserved for the "
        "coordinator's node; choose another name",
    ),
    Bad(
        "link_unknown_node",
        "link_unknown_node.yaml",
        "{file}:11:26: scenario.network.links.0.b: link to unknown node 'rack_a'; nodes: "
        "coordinator, rack-a, or an agent's own node (its name, when its group has no node) "
        "(did you mean 'rack-a'?)",
    ),
    Bad(
        "failures_disagree",
        "failures_disagree.yaml",
        "{file}:15:83: scenario.failures.nodes.on_failure: failures.agents and failures.nodes "
        "each run their own clock but share one failure semantics: on_failure must be the same "
        "in both (agents: 'resume', nodes: 'requeue')",
    ),
    Bad(
        "horizon_inf",
        "horizon_inf.yaml",
        "{file}:4:1: horizon: must be a finite number (got inf)",
    ),
    Bad(
        "rate_nan",
        "rate_nan.yaml",
        "{file}:10:34: scenario.workload.arrivals.rate: must be a finite number (got nan)",
    ),
    Bad(
        "rate_overflow",
        "rate_overflow.yaml",
        "{file}:10:34: scenario.workload.arrivals.rate: about 5e+301 arrivals before the "
        "horizon (50), more than a run can hold (the limit is 1e+07; raise it with "
        "KOSSIM_MAX_RUN_EVENTS=100000000)",
    ),
    Bad(
        "renewal_zero",
        "renewal_zero.yaml",
        "{file}:10:34: scenario.workload.arrivals.interarrival: this inter-arrival "
        "time is always 0, so arrivals would never let simulated time advance; its "
        "mean must be positive",
    ),
    Bad(
        "failures_zero",
        "failures_zero.yaml",
        "{file}:14:46: scenario.failures.agents.down: up and down times are both "
        "always 0, so the failure clock would never let simulated time advance; give "
        "one of them a positive mean",
    ),
    Bad(
        "failure_storm",
        "failure_storm.yaml",
        "{file}:14:14: scenario.failures.agents.up: about 1e+202 failures and repairs in a "
        "run of 50 over 4 agents, more than a run can hold (the limit is 1e+07; raise it "
        "with KOSSIM_MAX_RUN_EVENTS=100000000)",
    ),
    Bad(
        "share_overflow",
        "share_overflow.yaml",
        "{file}:11:5: scenario.workload.tasks: the shares add up to more than the "
        "largest float; shares are relative weights, so scale them down",
    ),
    Bad(
        "hyperexp_overflow",
        "hyperexp_overflow.yaml",
        "{file}:12:46: scenario.workload.tasks.0.work: scv is too large for the mean: "
        "the slow phase's mean overflows a float",
    ),
    Bad(
        "empirical_nan",
        "empirical_nan.yaml",
        "{file}:12:70: scenario.workload.tasks.0.work.file: empirical file "
        "{bad}/data/work_nan.csv: row 4, column 1: not a finite number",
    ),
    Bad(
        "empirical_two_columns",
        "empirical_two_columns.yaml",
        "{file}:12:70: scenario.workload.tasks.0.work.file: empirical file "
        "{bad}/data/work_two_columns.csv: 2 columns (work, size); give a one-column "
        "file, or name the column with 'column:' (the file needs a header row)",
    ),
    Bad(
        "empirical_text",
        "empirical_text.yaml",
        "{file}:12:70: scenario.workload.tasks.0.work.file: empirical file "
        "{bad}/data/work_text.csv: row 3, column 1: not a number",
    ),
    Bad(
        "empirical_directory",
        "empirical_directory.yaml",
        "{file}:12:70: scenario.workload.tasks.0.work.file: empirical file "
        "{bad}/data: is a directory",
    ),
    Bad(
        "tag_on_sequence",
        "tag_on_sequence.yaml",
        "{file}:12:46: scenario.workload.tasks.0.skills: YAML tag !req is not "
        "allowed: experiment files hold plain mappings, lists, strings, numbers, "
        "booleans and null",
    ),
    Bad(
        "tag_python",
        "tag_python.yaml",
        "{file}:2:1: name: YAML tag !!python/object/apply:os.system is not allowed: "
        "experiment files hold plain mappings, lists, strings, numbers, booleans and "
        "null",
    ),
    Bad(
        "alias_bomb",
        "alias_bomb.yaml",
        "{file}:4:25: bomb.f.1.1.3.8.8.5: more than 250000 values once aliases are "
        "expanded (the limit is 250000; raise it with KOSSIM_YAML_MAX_VALUES=1000000)",
    ),
    Bad(
        "deep_nesting",
        "deep_nesting.yaml",
        "{file}:16:72: nested deeper than 64 levels (the limit is 64; raise it with "
        "KOSSIM_YAML_MAX_DEPTH=256)",
    ),
    Bad(
        "component_raises",
        "component_raises.yaml",
        "{file}:15:34: policies.1.routing: cannot load routing component "
        "'kossim_bad_raises:Router': importing 'kossim_bad_raises' raised "
        "RuntimeError: the license server is unreachable (got "
        "'kossim_bad_raises:Router')",
        modules=("kossim_bad_raises",),
    ),
    Bad(
        "component_syntax_error",
        "component_syntax_error.yaml",
        "{file}:15:34: policies.1.routing: cannot load routing component "
        "'kossim_bad_syntax:Router': syntax error at "
        "{modules}/kossim_bad_syntax.py:1: '(' was never closed (got "
        "'kossim_bad_syntax:Router')",
        modules=("kossim_bad_syntax",),
    ),
    Bad(
        "expect_at_unswept",
        "expect_at_unswept.yaml",
        "{file}:19:62: expect.0.at.scenario.workload.arrivals.rate: no sweep point has this "
        "value (got 2.5)",
    ),
    Bad(
        "sweep_too_large",
        "sweep_too_large.yaml",
        "{file}:16:1: sweep: 40000 sweep points; an experiment has at most 10000 (split it "
        "into several experiments)",
    ),
    Bad(
        "set_too_many_runs",
        "valid.yaml",
        "--set: seeds: 2 policies x 6 points x 100000 seeds = 1200000 runs; an experiment "
        "has at most 1000000",
        args=(
            "--set",
            "seeds=100000",
            "--set",
            "sweep={scenario.workload.arrivals.rate: [1, 2, 3, 4, 5, 6]}",
        ),
    ),
    Bad(
        "unknown_node",
        "unknown_node.yaml",
        "{file}:8:81: scenario.agents.0.node: agent group 'agent' is on unknown node 'rack9' "
        "(nodes: none declared)",
    ),
    Bad(
        "failures_unknown_group",
        "failures_unknown_group.yaml",
        "{file}:14:91: scenario.failures.agents.only.0: unknown agent group 'agnet'; allowed: "
        "agent (did you mean 'agent'?)",
    ),
    Bad(
        "uniform_reversed",
        "uniform_reversed.yaml",
        "{file}:12:76: scenario.workload.tasks.0.work.high: must be >= low (2) (got 1.0)",
    ),
    Bad(
        "set_too_many_tasks",
        "valid.yaml",
        "--set: tasks: more tasks than a run can hold (the limit is 1e+07; raise it with "
        "KOSSIM_MAX_RUN_EVENTS=100000000) (got 100000000)",
        args=("--set", "horizon=null", "--set", "tasks=100000000"),
    ),
    Bad(
        "set_negative_rate",
        "valid.yaml",
        "--set: scenario.workload.arrivals.rate: Input should be greater than 0 (got -1)",
        args=("--set", "scenario.workload.arrivals.rate=-1"),
    ),
    Bad(
        "set_unknown_field",
        "valid.yaml",
        "--set: scenario.workload.arivals: unknown field 'arivals'; allowed: arrivals, tasks "
        "(did you mean 'arrivals'?)",
        args=("--set", "scenario.workload.arivals.rate=1"),
    ),
    Bad(
        "set_unknown_item",
        "valid.yaml",
        "policies.pod3: no item 'pod3'; available: central, pod2 (did you mean 'pod2'?)",
        args=("--set", "policies.pod3.queue=fcfs"),
    ),
    Bad(
        "set_python_tag",
        "valid.yaml",
        "name: cannot read the value as YAML: YAML tag !!python/name:os.system is not "
        "allowed: experiment files hold plain mappings, lists, strings, numbers, booleans "
        "and null (got '!!python/name:os.system')",
        args=("--set", "name=!!python/name:os.system"),
    ),
    Bad(
        "set_without_value",
        "valid.yaml",
        "--set expects PATH=VALUE (got 'seeds')",
        args=("--set", "seeds"),
    ),
    Bad(
        "set_unreadable_value",
        "valid.yaml",
        "seeds: cannot read the value as YAML: invalid YAML: expected the node content, "
        "but found '<stream end>' (while parsing a flow node) (got '[1,')",
        args=("--set", "seeds=[1,"),
    ),
]


def _fill(text: str, case: Bad, modules: Path) -> str:
    routing = ", ".join(sorted(available("routing")))
    metrics = ", ".join(sorted(METRIC_DIRECTION))
    for key, value in (
        ("{file}", str(BAD / case.file)),
        ("{bad}", str(BAD)),
        ("{modules}", str(modules)),
        ("{routing}", routing),
        ("{metrics}", metrics),
    ):
        text = text.replace(key, value)
    return text


@pytest.fixture
def modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder on ``sys.path`` holding the broken component modules."""
    for name, source in MODULES.items():
        (tmp_path / f"{name}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def _validate(case: Bad) -> tuple[int, str, str]:
    """(exit code, stderr, everything printed) of ``kossim validate`` on the case."""
    result = CliRunner().invoke(app, ["validate", str(BAD / case.file), *case.args])
    assert result.exception is None or isinstance(result.exception, SystemExit)
    return result.exit_code, result.stderr, result.output


def _one_line(text: str) -> str:
    """Whitespace runs as one space: the console may wrap a long line where it likes."""
    return " ".join(text.split())


def _first_problem(stderr: str) -> str:
    header, _, problems = stderr.partition("\n")
    assert header == "error: invalid input (1 problem)"
    return _one_line(problems)


def test_the_base_file_is_valid() -> None:
    """Each broken file differs from a valid one in one place only."""
    result = CliRunner().invoke(app, ["validate", str(BAD / "valid.yaml")])
    assert result.exit_code == 0, result.output
    assert "2 policies x 1 point x 2 seeds = 4 runs" in _one_line(result.stdout)


def test_a_header_row_over_one_column_is_valid() -> None:
    """``work`` above the numbers of a one-column data file is a header, not an error."""
    result = CliRunner().invoke(app, ["validate", str(BAD / "valid_empirical_header.yaml")])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_exit_code_2_without_traceback(case: Bad, modules: Path) -> None:
    """Bad input exits 2 with one problem on stderr, nothing on stdout, and no traceback."""
    code, stderr, output = _validate(case)
    assert code == 2
    assert "Traceback" not in output
    assert output == stderr
    assert _first_problem(stderr)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_first_problem_line(case: Bad, modules: Path) -> None:
    """The problem names file, line, column, field path, what is wrong and what is allowed."""
    _, stderr, _ = _validate(case)
    assert _first_problem(stderr) == _one_line(_fill(case.first, case, modules))


def test_a_long_problem_stays_on_one_line() -> None:
    """Editors and CI parse ``file:line:col:`` per line, so a problem is never wrapped."""
    case = CASES[1]
    _, stderr, _ = _validate(case)
    assert stderr.splitlines()[1] == _fill(case.first, case, Path())


def test_user_text_prints_as_written() -> None:
    """Console markup and emoji codes in a value are shown verbatim, not rendered."""
    result = CliRunner().invoke(
        app, ["validate", str(BAD / "valid.yaml"), "--set", "name=:x: [bold]x"]
    )
    assert result.exit_code == 2
    assert result.stderr.splitlines()[1].endswith("(got ':x: [bold]x')")
