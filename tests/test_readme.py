"""The README's examples run: the experiment file validates and simulates, the sweep and
expectation fragments validate inside it, and the pandas recipes run on real results."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kossim.config.experiment import load_experiment
from kossim.config.loader import load_yaml_text
from kossim.lab import run_experiment
from kossim.lab.plan import make_plan

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def _experiment_block() -> str:
    return next(b for b in blocks("yaml") if b.startswith("name: mmc-90"))


def test_the_experiment_example_validates_and_runs(tmp_path: Path) -> None:
    """The annotated experiment file is valid and runs (shortened) with every policy."""
    path = tmp_path / "mmc-90.yaml"
    path.write_text(_experiment_block())
    loaded = load_experiment(path, ["seeds=2", "horizon=300", "warmup=30"])
    outcome = run_experiment(loaded, tmp_path / "out", executor="serial", progress=False)
    assert outcome.n_failed == 0
    assert len(outcome.plan.specs) == 3 * 3 * 2  # 3 policies x 3 rates x 2 seeds


@pytest.mark.parametrize("fragment", ["sweep:", "expect:"])
def test_fragments_fit_the_experiment(fragment: str, tmp_path: Path) -> None:
    """The sweep (with zip) and expect examples are valid in the example experiment."""
    base, _ = load_yaml_text(_experiment_block())
    block = next(b for b in blocks("yaml") if b.startswith(fragment))
    part, _ = load_yaml_text(block)
    data: dict[str, Any] = {**base, **part}
    (tmp_path / "reference").mkdir()
    (tmp_path / "reference" / "summary.csv").write_text("policy,metric,scope,mean\n")
    path = tmp_path / "exp.yaml"
    path.write_text(json.dumps(data))  # JSON is YAML
    make_plan(load_experiment(path))


def test_pandas_recipes_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The pandas recipes run on a (shortened) quick-start results folder."""
    loaded = load_experiment(ROOT / "experiments" / "quickstart.yaml",
                             ["seeds=2", "horizon=200", "warmup=20"])  # fmt: skip
    run_experiment(loaded, tmp_path / "results" / "quickstart", executor="serial",
                   progress=False)  # fmt: skip
    monkeypatch.chdir(tmp_path)
    recipes = [b for b in blocks("python") if "pd.read_" in b]
    assert recipes
    for code in recipes:
        exec(compile(code, "README.md", "exec"), {})


@pytest.fixture
def fresh_my_policies(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Keep the example's module and the id it registers out of the shared state."""
    from kossim import registry

    monkeypatch.setitem(registry._REGISTRY, "routing", dict(registry.available("routing")))
    sys.modules.pop("my_policies", None)
    yield
    sys.modules.pop("my_policies", None)


def test_the_component_example_runs_beside_the_experiment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_my_policies: None
) -> None:
    """The README's router, saved as my_policies.py beside the experiment file, is found
    from another working directory (no sys.path change), also by worker processes."""
    code = next(b for b in blocks("python") if b.startswith("# my_policies.py"))
    (tmp_path / "exp").mkdir()
    (tmp_path / "exp" / "my_policies.py").write_text(code)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    data, _ = load_yaml_text(_experiment_block())
    ref_text = re.search(r"`routing: (\{id: \"my_policies:Trusted\".*?\})`", README)
    assert ref_text is not None
    ref, _ = load_yaml_text(ref_text.group(1))
    data["policies"] = [{"name": "trusted", "dispatch": "push", "routing": ref}]
    data.pop("sweep")
    data.pop("expect", None)  # its expectations compare the policies replaced here
    path = tmp_path / "exp" / "exp.yaml"
    path.write_text(json.dumps(data))
    loaded = load_experiment(path, ["seeds=1", "horizon=200", "warmup=20"])
    outcome = run_experiment(loaded, tmp_path / "out", executor="local", jobs=1, progress=False)
    assert outcome.n_failed == 0
    assert len(outcome.plan.specs) == 1


def test_the_component_example_conforms_from_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_my_policies: None
) -> None:
    """From the folder holding my_policies.py, the reference passes the conformance check."""
    from kossim.conformance import check_component

    code = next(b for b in blocks("python") if b.startswith("# my_policies.py"))
    (tmp_path / "my_policies.py").write_text(code)
    monkeypatch.chdir(tmp_path)
    assert check_component("routing", {"id": "my_policies:Trusted", "min_trust": 0.8}) == []


def test_ci_runs_exactly_the_quick_start_commands() -> None:
    """.ci/run runs the README's two quick-start commands, in order, and nothing else."""
    quick_start = blocks("bash")[:2]
    assert quick_start[0].strip() == "pip install -e . && kossim run experiments/quickstart.yaml"
    assert quick_start[1].strip() == 'pip install -e ".[test]" && pytest'
    script = (ROOT / ".ci" / "run").read_text().splitlines()
    commands = [line for line in script if line and not line.startswith("#")]
    assert commands[:2] == ["set -euo pipefail", 'cd "$(dirname "$0")/.."']
    assert commands[2:] == [b.strip() for b in quick_start]


def test_a_run_needs_no_test_extra(tmp_path: Path) -> None:
    """`pip install -e .` is enough for `kossim run`: a run, with its report, imports none of
    the test extra's packages (they are made unimportable in a fresh interpreter)."""
    code = textwrap.dedent(
        f"""
        import sys
        blocked = {{"pytest", "hypothesis", "dask", "distributed", "ruff", "mypy", "jsonschema"}}

        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.partition(".")[0] in blocked:
                    raise ImportError(f"test-only package imported at run time: {{name}}")

        sys.meta_path.insert(0, Block())
        from kossim.cli import main
        sys.argv = ["kossim", "run", {str(ROOT / "experiments" / "quickstart.yaml")!r},
                    "--out", {str(tmp_path / "out")!r}, "--set", "seeds=2",
                    "--set", "horizon=200", "--set", "warmup=20", "--jobs", "1",
                    "--executor", "serial", "--no-progress"]
        main()
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=tmp_path, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "test-only package" not in done.stderr
    assert (tmp_path / "out" / "report.html").is_file()


def test_the_ci_workflow_steps_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The workflow installs the checkout as the quick start does, and its check step, run
    as written in a checkout, passes and leaves the report and JUnit XML it uploads."""
    from typer.testing import CliRunner

    from kossim.cli import app

    workflow, _ = load_yaml_text(next(b for b in blocks("yaml") if "policies.yml" in b))
    steps = [step["run"] for step in workflow["jobs"]["check"]["steps"] if "run" in step]
    install, command = steps
    assert install == blocks("bash")[0].split(" && ")[0]  # what a run needs, from the checkout
    upload = next(s for s in workflow["jobs"]["check"]["steps"] if "upload-artifact" in str(s))
    (tmp_path / "experiments").mkdir()
    quickstart = (ROOT / "experiments" / "quickstart.yaml").read_text()
    (tmp_path / "experiments" / "quickstart.yaml").write_text(quickstart)
    monkeypatch.chdir(tmp_path)
    args = command.split()
    assert args[0] == "kossim"
    result = CliRunner().invoke(app, args[1:])
    assert result.exit_code == 0, result.output
    uploaded = tmp_path / upload["with"]["path"]
    assert (uploaded / "check.xml").is_file()
    assert "Expectations" in (uploaded / "quickstart" / "report.html").read_text()


def test_the_policies_fragments_fit_the_experiment(tmp_path: Path) -> None:
    """Every ``policies:`` fragment (components and behaviours) validates in the example."""
    base, _ = load_yaml_text(_experiment_block())
    fragments = [b for b in blocks("yaml") if b.startswith("policies:")]
    assert len(fragments) >= 3  # detectors, contract net, delegation
    for i, block in enumerate(fragments):
        part, _ = load_yaml_text(block)
        data: dict[str, Any] = {**base, **part, "expect": []}
        data.pop("sweep")
        path = tmp_path / f"exp{i}.yaml"
        path.write_text(json.dumps(data))
        make_plan(load_experiment(path))


def test_the_protocol_example_runs_conforms_and_detects(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's detector, beside an experiment: it conforms (validate --conformance),
    and suspects crashes ``missed`` intervals after the last heartbeat, give or take an
    interval and the latency."""
    from typer.testing import CliRunner

    from kossim import registry
    from kossim.cli import app

    monkeypatch.setitem(registry._REGISTRY, "detector", dict(registry.available("detector")))
    sys.modules.pop("my_protocols", None)
    code = next(b for b in blocks("python") if b.startswith("# my_protocols.py"))
    (tmp_path / "my_protocols.py").write_text(code)
    data, _ = load_yaml_text((ROOT / "experiments" / "protocols" / "heartbeats.yaml").read_text())
    data["policies"] = [
        {
            "name": "missed",
            "dispatch": "central",
            "detector": {"id": "my_protocols:Missed", "interval": 0.5, "missed": 3},
        }
    ]
    data.pop("sweep")
    data["expect"] = [{"metric": "lost", "max": 0}]
    path = tmp_path / "exp.yaml"
    path.write_text(json.dumps(data))
    monkeypatch.chdir(tmp_path)
    checked = CliRunner().invoke(app, ["validate", str(path), "--conformance"])
    assert checked.exit_code == 0, checked.output
    assert "detector 'missed_beats': conforms" in checked.stdout
    loaded = load_experiment(path, ["seeds=2", "horizon=600", "warmup=10"])
    outcome = run_experiment(loaded, tmp_path / "out", executor="serial", progress=False)
    assert outcome.n_failed == 0
    import pandas as pd

    summary = pd.read_csv(tmp_path / "out" / "summary.csv").set_index(["metric", "scope"])
    latency = summary.loc[("detection_latency_mean", "all"), "mean"]
    assert 1.0 <= latency <= 1.5 + 0.5 + 0.3  # (missed - 1) h .. missed h + one sweep + latency
    assert summary.loc[("messages", "kind=heartbeat"), "mean"] > 0
    sys.modules.pop("my_protocols", None)


def test_the_trace_commands_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's ``kossim trace`` commands, on a traced (shortened) heartbeats run."""
    import shlex

    from typer.testing import CliRunner

    from kossim.cli import app

    monkeypatch.chdir(tmp_path)
    loaded = load_experiment(
        ROOT / "experiments" / "protocols" / "heartbeats.yaml",
        ["seeds=1", "horizon=100", "warmup=5"],
    )
    run_experiment(loaded, None, executor="serial", trace=True, progress=False)
    commands = [
        line
        for block in blocks("bash")
        for line in block.splitlines()
        if line.startswith("kossim trace ")
    ]
    assert len(commands) == 2
    for command in commands:
        result = CliRunner().invoke(app, shlex.split(command)[1:])
        assert result.exit_code == 0, result.output
        assert result.stdout.strip(), command
