"""Failure clocks: an up/down clock per agent, or per node for all its agents.

Physics: a clock runs whether its agents are busy or idle, each on its own
named random streams (``failures:agent:<name>`` or ``failures:node:<node>``,
``up`` and ``down``), so every policy meets the same failure schedule.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kossim.config.models import FailureSpec
from kossim.dists import lean_sampler
from kossim.sim.streams import stream

if TYPE_CHECKING:
    from kossim.sim.agent import Agent
    from kossim.sim.world import World

__all__ = ["start_failures"]


def _clock(world: World, targets: list[Agent], spec: FailureSpec, name: str) -> Any:
    up = lean_sampler(spec.up, stream(world.seed, f"failures:{name}:up"))
    down = lean_sampler(spec.down, stream(world.seed, f"failures:{name}:down"))
    while True:
        yield world.env.timeout(up())
        for a in targets:
            a.fail()
        _log_clock(world, "crash", targets)
        yield world.env.timeout(down())
        for a in targets:
            a.repair()
        _log_clock(world, "repair", targets)


def _log_clock(world: World, kind: str, targets: list[Agent]) -> None:
    log = world.kernel.log
    if log is not None:
        for a in targets:
            log.record(
                world.env._now,
                kind,
                a.name,
                f"{a.name} {kind}, failure {a.epoch}",
                None,
                {"up": a.up},
            )


def start_failures(world: World) -> None:
    """Start the clock of every agent (``failures.agents``) and node (``failures.nodes``)
    the scenario lets fail (``only``: the groups or nodes named)."""
    fail = world.exp.scenario.failures
    if fail.agents is not None:
        only = fail.agents.only
        for a in world.agents:
            if only is None or a.profile.group in only:
                world.env.process(_clock(world, [a], fail.agents, f"agent:{a.name}"))
    if fail.nodes is not None:
        by_node: dict[str, list[Agent]] = {}
        for a in world.agents:
            by_node.setdefault(a.node, []).append(a)
        only = fail.nodes.only
        for node, members in sorted(by_node.items()):
            if only is None or node in only:
                world.env.process(_clock(world, members, fail.nodes, f"node:{node}"))
