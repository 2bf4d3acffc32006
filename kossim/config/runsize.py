"""Whether each run of a valid experiment can finish: its expected number of events.

The experiment language accepts any positive rate and horizon, but a run
expecting 1e300 arrivals (or failure clocks cycling every 1e-200) would never
end, and one expecting 1e8 would need over 10 GB of task records. The plan
checks each sweep point's runs against :func:`~kossim.config.limits.max_run_events`
before anything runs; the engine itself does not, so a run is never refused
on a worker whose environment differs.
"""

from __future__ import annotations

from kossim.config.limits import max_run_events, run_events_hint
from kossim.config.models import Experiment

__all__ = ["run_size_problems"]

Problem = tuple[tuple[str | int, ...], str, object]
"""(data path, message, value shown or None)."""


def run_size_problems(exp: Experiment) -> list[Problem]:
    """Where a run of ``exp`` would expect more arrivals or failure cycles than allowed."""
    limit = max_run_events()
    arrivals = exp.scenario.workload.arrivals
    problems: list[Problem] = []
    if exp.horizon is not None:
        span = exp.horizon
        expected = span / arrivals.mean_interarrival()
        if expected > limit:
            field = "rate" if arrivals.rate is not None else "interarrival"
            problems.append(
                (
                    ("scenario", "workload", "arrivals", field),
                    f"about {expected:.3g} arrivals before the horizon ({span:g}), more than "
                    f"a run can hold {run_events_hint()}",
                    None,
                )
            )
    else:
        assert exp.tasks is not None
        span = exp.drain_limit * exp.tasks * arrivals.mean_interarrival()
        if exp.tasks > limit:
            problems.append(
                (("tasks",), f"more tasks than a run can hold {run_events_hint()}", exp.tasks)
            )
    fleet = sum(g.count for g in exp.scenario.agents)
    for kind in ("agents", "nodes"):
        spec = getattr(exp.scenario.failures, kind)
        if spec is None:
            continue
        cycles = span / (spec.up.mean_value() + spec.down.mean_value()) * fleet
        if cycles > limit:
            problems.append(
                (
                    ("scenario", "failures", kind, "up"),
                    f"about {cycles:.3g} failures and repairs in a run of {span:g} over "
                    f"{fleet} agents, more than a run can hold {run_events_hint()}",
                    None,
                )
            )
    return problems
