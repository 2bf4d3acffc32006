"""The README's examples run: the experiment file validates and simulates, the sweep and
expectation fragments validate inside it, and the pandas recipes run on real results."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from kossim.config.experiment import load_experiment
from kossim.config.loader import load_yaml_text
from kossim.lab import run_experiment
from kossim.plan import make_plan

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


def test_the_component_example_conforms_and_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's router, saved as my_policies.py, passes the conformance check and runs."""
    from kossim import registry
    from kossim.conformance import check_component

    # The example registers its id on import: keep that out of the shared registry.
    monkeypatch.setitem(registry._REGISTRY, "routing", dict(registry.available("routing")))
    code = next(b for b in blocks("python") if b.startswith("# my_policies.py"))
    (tmp_path / "my_policies.py").write_text(code)
    monkeypatch.syspath_prepend(str(tmp_path))
    ref = {"id": "my_policies:Trusted", "min_trust": 0.8}
    assert check_component("routing", ref) == []
    data, _ = load_yaml_text(_experiment_block())
    data["policies"] = [{"name": "trusted", "dispatch": "push", "routing": ref}]
    data.pop("sweep")
    data.pop("expect", None)  # its expectations compare the policies replaced here
    path = tmp_path / "exp.yaml"
    path.write_text(json.dumps(data))
    loaded = load_experiment(path, ["seeds=1", "horizon=200", "warmup=20"])
    outcome = run_experiment(loaded, tmp_path / "out", executor="serial", progress=False)
    assert outcome.n_failed == 0
