"""Names of places in a scenario: agents, agent groups and nodes, as timelines and
partitions use them (an agent's name or group stands for its node)."""

from __future__ import annotations

from typing import Any

from kossim.config.base import COORDINATOR
from kossim.config.problems import did_you_mean
from kossim.errors import FieldError

__all__ = ["agent_names", "names_to_nodes", "partition_sides"]


def _directory(scenario: Any) -> tuple[dict[str, list[str]], dict[str, str]]:
    """``(group -> agent names, agent -> node)`` of a scenario."""
    groups: dict[str, list[str]] = {}
    node_of: dict[str, str] = {}
    for g in scenario.agents:
        names = [f"{g.group}-{i}" for i in range(g.count)]
        groups[g.group] = names
        for n in names:
            node_of[n] = g.node or n
    return groups, node_of


def agent_names(scenario: Any, names: list[str], at: tuple[str | int, ...]) -> list[str]:
    """Agent names for agent names or groups; unknown names raise at ``at``."""
    groups, node_of = _directory(scenario)
    out: list[str] = []
    for i, name in enumerate(names):
        if name in groups:
            out.extend(groups[name])
        elif name in node_of:
            out.append(name)
        else:
            raise FieldError(
                f"unknown agent or group {name!r}; groups: {', '.join(groups)}, or an "
                f"agent's name (<group>-<i>){did_you_mean(name, [*groups, *node_of])}",
                *at,
                i,
            )
    return out


def names_to_nodes(scenario: Any, names: list[str], at: tuple[str | int, ...]) -> set[str]:
    """Nodes for names of nodes (declared, the coordinator's, an agent's own), agents or
    agent groups; unknown names raise at ``at``."""
    groups, node_of = _directory(scenario)
    declared = {n.name for n in scenario.nodes}
    data = {t.data.node for t in scenario.workload.tasks if getattr(t, "data", None)}
    out: set[str] = set()
    for i, name in enumerate(names):
        if name == COORDINATOR or name in declared or name in data:
            out.add(name)
        elif name in node_of:
            out.add(node_of[name])
        elif name in groups:
            out.update(node_of[a] for a in groups[name])
        else:
            known = [COORDINATOR, *declared, *groups]
            raise FieldError(
                f"unknown node, agent or group {name!r}; nodes: "
                f"{', '.join([COORDINATOR, *sorted(declared)])}, groups: "
                f"{', '.join(groups)}, or an agent's name{did_you_mean(name, known)}",
                *at,
                i,
            )
    return out


def partition_sides(
    scenario: Any, groups: list[list[str]], at: tuple[str | int, ...]
) -> list[set[str]]:
    """The node sets of a partition's ``groups``; a node in two groups raises."""
    sides: list[set[str]] = []
    seen: dict[str, int] = {}
    for gi, names in enumerate(groups):
        nodes = names_to_nodes(scenario, names, (*at, gi))
        for n in sorted(nodes):
            if n in seen:
                raise FieldError(
                    f"node {n!r} is in groups {seen[n]} and {gi}: a node is on one side",
                    *at,
                    gi,
                )
            seen[n] = gi
        sides.append(nodes)
    return sides
