"""Shared fixtures: a tiny experiment and a writer of experiment files; Hypothesis profiles.

The repository root goes first on ``sys.path`` so that ``tests.plugins`` (test
policy components and run functions) imports here and in worker processes,
which inherit this process's path.

Hypothesis runs under one of two profiles, chosen by ``KOSSIM_HYPOTHESIS``
(or pytest's ``--hypothesis-profile``):

- ``ci`` (the default): derandomized, so every run tries the same examples
  and CI is reproducible;
- ``random``: fresh random examples each run and a larger budget
  (``KOSSIM_HYPOTHESIS_EXAMPLES``, default 500 per test), to look for new
  failures; a failure prints the blob that replays it.
"""

from __future__ import annotations

import copy
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

settings.register_profile(
    "ci",
    max_examples=30,
    derandomize=True,
    deadline=None,  # simulated runs vary in wall time with the machine's load
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.register_profile(
    "random",
    settings.get_profile("ci"),
    derandomize=False,
    max_examples=int(os.environ.get("KOSSIM_HYPOTHESIS_EXAMPLES", "500")),
)
HYPOTHESIS_PROFILE = os.environ.get("KOSSIM_HYPOTHESIS", "ci")
if HYPOTHESIS_PROFILE not in ("ci", "random"):
    raise pytest.UsageError(f"KOSSIM_HYPOTHESIS must be ci or random (got {HYPOTHESIS_PROFILE!r})")
settings.load_profile(HYPOTHESIS_PROFILE)

TINY: dict[str, Any] = {
    "name": "tiny",
    "seeds": 3,
    "horizon": 200,
    "warmup": 20,
    "scenario": {
        "agents": [{"group": "worker", "count": 3, "speed": 1.0, "capacity": 1}],
        "workload": {
            "arrivals": {"process": "poisson", "rate": 2.0},
            "tasks": [{"type": "job", "work": {"dist": "exponential", "mean": 1.0}}],
        },
    },
    "policies": [
        {"name": "central", "dispatch": "central", "queue": "fcfs"},
        {"name": "random", "dispatch": "push", "routing": "random"},
    ],
    "sweep": {"scenario.workload.arrivals.rate": [1.5, 2.4]},
}
"""Two policies x two sweep points x three seeds = 12 runs of ~300 tasks each."""


@pytest.fixture
def tiny_data() -> dict[str, Any]:
    """A fresh copy of the tiny experiment, to modify."""
    return copy.deepcopy(TINY)


@pytest.fixture
def write_experiment(tmp_path: Path) -> Callable[..., Path]:
    """``write_experiment(data=None, **fields)``: an experiment file in ``tmp_path``.

    JSON is YAML, so the file loads like any experiment; ``fields`` replace
    top-level entries of ``data`` (the tiny experiment by default).
    """

    def write(data: dict[str, Any] | None = None, **fields: Any) -> Path:
        content = copy.deepcopy(TINY if data is None else data)
        content.update(fields)
        path = tmp_path / f"{content['name']}.yaml"
        path.write_text(json.dumps(content, indent=2))
        return path

    return write
