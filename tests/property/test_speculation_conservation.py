"""Conservation with backup copies, on random small scenarios (Hypothesis).

The scenarios of :mod:`tests.property.test_conservation` (assorted fleets, skills,
loads up to overload, latency, failures under every semantics), with slow agents
(a random share of a group, slow for the whole run or in episodes) and a
speculation component of random interval, threshold, observation time and bounds:
every arrival is recorded exactly once, none is lost, the first copy to finish
ends its task, backups never outnumber the copies made, and a run is a pure
function of its seed.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from kossim.runspec import RunSpec
from kossim.sim import simulate, simulate_world
from kossim.sim.task import ABANDONED, DONE, REJECTED, RENEGED
from tests.property.test_conservation import _same_rows, guarded_engine, scenarios


@st.composite
def speculating_scenarios(draw: st.DrawFn) -> dict[str, Any]:
    cfg = draw(scenarios())
    groups = cfg["scenario"]["agents"]
    group = groups[draw(st.integers(0, len(groups) - 1))]
    slowdown: dict[str, Any] = {
        "share": draw(st.sampled_from([0.1, 0.5, 1.0])),
        "factor": draw(
            st.sampled_from(
                [{"dist": "constant", "value": 5.0}, {"dist": "uniform", "low": 1.0, "high": 10.0}]
            )
        ),
    }
    if draw(st.booleans()):
        slowdown["every"] = {"dist": "exponential", "mean": draw(st.sampled_from([2.0, 10.0]))}
        slowdown["length"] = {"dist": "exponential", "mean": draw(st.sampled_from([1.0, 5.0]))}
    group["slowdown"] = slowdown
    cfg["policies"][0]["speculation"] = {
        "id": "backup",
        "interval": draw(st.sampled_from([0.2, 1.0])),
        "threshold": draw(st.sampled_from([0.3, 0.8, 1.0])),
        "min_elapsed": draw(st.sampled_from([0.0, 1.0])),
        "max_backups": draw(st.sampled_from([1, 3])),
        "max_share": draw(st.sampled_from([0.1, 1.0])),
    }
    return cfg


@given(cfg=speculating_scenarios(), seed=st.integers(0, 2**16))
def test_every_arrival_is_accounted_for_with_backups(cfg: dict[str, Any], seed: int) -> None:
    """Each arrival ends once or is still live; a backup that won ended its task."""
    spec = RunSpec.make(cfg, "p", (), seed)
    with guarded_engine():
        world, cols = simulate_world(spec)
    assert cols["id"].tolist() == list(range(world.arrived)), "each arrival appears exactly once"
    state = cols["state"]
    ended = (state == DONE) | (state == ABANDONED) | (state == REJECTED) | (state == RENEGED)
    assert world.in_system == int((~ended).sum())
    assert (cols["end"][~ended] == -1).all()
    (detector,) = [s.behaviour for s in world.services if s.kind == "speculation"]
    end_of = dict(zip(cols["id"].tolist(), cols["end"].tolist(), strict=True))
    for copy in detector.copies:
        if copy.state == DONE and copy.end >= 0 and not copy.cancelled:
            assert end_of[copy.id] == copy.end, f"backup {copy!r} won but its task ended else"
    result = simulate(spec)
    assert result.status == "ok", result.error
    m = {(name, scope): v for name, scope, v in result.metrics}
    assert m[("lost", "all")] == 0
    assert m[("backup_wins", "all")] <= m[("backups", "all")] <= m[("duplicates", "all")]
    assert m[("duplicate_work", "all")] >= 0
    assert _same_rows(result.metrics, simulate(spec).metrics), "same seed, different metrics"
