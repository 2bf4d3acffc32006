"""The shape of a delegation tree: which manager answers for which agents.

A tree is generated from a branching factor (agents in index order, ``b`` to
a lowest manager, ``b`` managers to the manager above, up to a single root),
or given explicitly as ``manager -> children`` (managers or agent names).
The root is the coordinator itself; every other manager is an actor placed
on the node of the first agent of its subtree, so that each hop between
managers pays the network's latency like any other message.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["ROOT", "Shape", "explicit_shape", "generated_shape"]

ROOT = "coordinator"
"""The root manager is the coordinator actor; its name in a hierarchy."""


@dataclass
class Shape:
    """Managers by name: their children (in order), parent and depth (root 0)."""

    children: dict[str, list[str]] = field(default_factory=dict)
    parent: dict[str, str] = field(default_factory=dict)
    level: dict[str, int] = field(default_factory=dict)

    @property
    def managers(self) -> list[str]:
        """Every manager, root first, then level by level (the order they are built in)."""
        return sorted(self.children, key=lambda m: (self.level[m], list(self.children).index(m)))

    @property
    def depth(self) -> int:
        """Managers on the longest path from the root to an agent: the most hops a task makes."""
        return 1 + max(self.level.values())

    def agents_under(self, name: str) -> list[str]:
        """The agents of ``name``'s subtree, left to right (``name`` itself if an agent)."""
        if name not in self.children:
            return [name]
        return [a for c in self.children[name] for a in self.agents_under(c)]

    def _link(self) -> None:
        self.parent = {c: m for m, cs in self.children.items() for c in cs}
        self.level = {ROOT: 0}
        for m in self.managers_from(ROOT):
            for c in self.children[m]:
                if c in self.children:
                    self.level[c] = self.level[m] + 1

    def managers_from(self, top: str) -> list[str]:
        out, todo = [], [top]
        while todo:
            m = todo.pop(0)
            out.append(m)
            todo.extend(c for c in self.children[m] if c in self.children)
        return out


def generated_shape(agents: Sequence[str], branching: int | None) -> Shape:
    """``branching`` agents per lowest manager, ``branching`` managers per manager above;
    ``None``: one manager (the root) over every agent, i.e. flat central dispatch."""
    shape = Shape()
    if branching is None or branching >= len(agents):
        shape.children[ROOT] = list(agents)
        shape._link()
        return shape
    level: list[str] = list(agents)
    rows: list[list[tuple[str, list[str]]]] = []
    while len(level) > branching:
        groups = [level[i : i + branching] for i in range(0, len(level), branching)]
        rows.append([(f"m{len(rows)}-{j}", g) for j, g in enumerate(groups)])
        level = [name for name, _ in rows[-1]]
    shape.children[ROOT] = level
    for row in reversed(rows):  # the root's children first: the build order
        for name, group in row:
            shape.children[name] = group
    # Name levels from the root down (m1-* under the root ...) for a readable log.
    rename = {
        name: f"m{len(rows) - i}-{j}"
        for i, row in enumerate(rows)
        for j, (name, _) in enumerate(row)
    }
    shape.children = {
        rename.get(m, m): [rename.get(c, c) for c in cs] for m, cs in shape.children.items()
    }
    shape._link()
    return shape


def explicit_shape(hierarchy: dict[str, list[str]], agents: Sequence[str]) -> Shape:
    """A given ``manager -> children`` map, rooted at ``coordinator``; every agent must sit
    under exactly one manager (ValueError naming what is wrong)."""
    if ROOT not in hierarchy:
        raise ValueError(f"hierarchy: the root manager must be named {ROOT!r}")
    known = set(agents)
    seen: dict[str, str] = {ROOT: ROOT}
    for m, cs in hierarchy.items():
        if m in known:
            raise ValueError(f"hierarchy: {m!r} is an agent, it cannot manage others")
        for c in cs:
            if c in seen:
                if c == ROOT:
                    raise ValueError(f"hierarchy: {m!r} names the root {ROOT!r} as a child")
                raise ValueError(f"hierarchy: {c!r} sits under both {seen[c]!r} and {m!r}")
            if c not in known and c not in hierarchy:
                raise ValueError(
                    f"hierarchy: {m!r} names {c!r}, neither an agent nor a manager "
                    f"(agents: {', '.join(list(agents)[:6])}{' ...' if len(agents) > 6 else ''})"
                )
            seen[c] = m
    shape = Shape(children={m: list(cs) for m, cs in hierarchy.items()})
    shape._link()
    missing = [a for a in agents if a not in seen]
    if missing:
        raise ValueError(f"hierarchy: agents under no manager: {', '.join(missing[:6])}")
    unreached = [m for m in hierarchy if m not in shape.level]
    if unreached:
        raise ValueError(f"hierarchy: managers not under the root: {', '.join(unreached)}")
    return shape
