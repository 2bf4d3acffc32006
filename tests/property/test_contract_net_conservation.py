"""Conservation under contract net on random small scenarios (Hypothesis).

The scenarios of :mod:`tests.property.test_conservation` (assorted fleets,
skills, loads up to overload, latency, failures under every semantics) with a
contract-net coordinator of random window, ``k`` and back-off: every arrival
is accounted for exactly once, no task starts on a down agent, twice, or
beyond capacity, and a run is a pure function of its seed.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from kossim.runspec import RunSpec
from kossim.sim import simulate, simulate_world
from kossim.sim.task import ABANDONED, DONE
from tests.property.test_conservation import _same_rows, guarded_engine, scenarios


@st.composite
def contract_net_scenarios(draw: st.DrawFn) -> dict[str, Any]:
    cfg = draw(scenarios())
    coordinator: dict[str, Any] = {
        "id": "contract_net",
        "window": draw(st.sampled_from([0.05, 0.3, 1.0])),  # below, near and above the RTT
        "k": draw(st.sampled_from([None, 1, 2])),
        "count_awards": draw(st.booleans()),
    }
    if draw(st.booleans()):
        coordinator["backoff"] = draw(st.sampled_from([0.1, 1.0]))
    cfg["policies"][0]["coordinator"] = coordinator
    return cfg


@given(cfg=contract_net_scenarios(), seed=st.integers(0, 2**16))
def test_every_arrival_is_accounted_for_under_contract_net(cfg: dict[str, Any], seed: int) -> None:
    """Each arrival ends once (completed or abandoned) or is still live; none is lost."""
    spec = RunSpec.make(cfg, "p", (), seed)
    with guarded_engine():
        world, cols = simulate_world(spec)
    assert cols["id"].tolist() == list(range(world.arrived)), "each arrival appears exactly once"
    state = cols["state"]
    live = ~((state == DONE) | (state == ABANDONED))
    assert world.in_system == int(live.sum())
    assert (cols["end"][live] == -1).all()
    result = simulate(spec)
    assert result.status == "ok", result.error
    m = {(name, scope): v for name, scope, v in result.metrics}
    assert m[("lost", "all")] == 0
    assert _same_rows(result.metrics, simulate(spec).metrics), "same seed, different metrics"
