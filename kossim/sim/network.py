"""The network between the coordinator and the nodes that host agents.

A star from the coordinator to every node with the default latency, plus the
explicit links. A message follows the path of least mean latency (computed
once per pair of nodes, by networkx when explicit links make it a graph
rather than a star); its delay is one draw per link on that path, from a
stream per link. When every latency is the constant 0 the network is
*instant*: the kernel delivers messages by a direct call, with no SimPy event.

Costs stay flat in the number of nodes: paths and link samplers are made
once per pair of nodes actually used and cached (the graph, and a shortest-path
tree per source, once per topology); a constant link costs no sampler (a path
of constant links is one stored number), and a random link's sampler draws
small blocks first, growing to full blocks as the link is used (the same
numbers in the same order, for distributions drawn value by value).
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

from kossim.config.models import COORDINATOR, Network
from kossim.dists import (
    Constant,
    Distribution,
    lean_sampler,
)
from kossim.sim.streams import stream

__all__ = ["Net"]


class Net:
    """Link delays between nodes: the path of least mean latency, one draw per link."""

    def __init__(self, spec: Network, nodes: list[str], seed: int) -> None:
        self._edges: dict[tuple[str, str], Distribution] = {}
        for n in nodes:
            self._add(COORDINATOR, n, spec.latency)
        for link in spec.links:
            self._add(link.a, link.b, link.latency)
        self.star = not spec.links
        self.instant = all(isinstance(d, Constant) and d.value == 0 for d in self._edges.values())
        self._seed = seed
        self._links: dict[tuple[str, str], Any] = {}
        # (src, dst) -> the draws of the path's links, or its delay when every link is constant
        self._paths: dict[tuple[str, str], list[Any] | float] = {}
        self._graph: Any = None
        self._trees: dict[str, dict[str, list[str]]] = {}

    def _add(self, a: str, b: str, dist: Distribution) -> None:
        self._edges[(a, b)] = self._edges[(b, a)] = dist

    def _path(self, src: str, dst: str) -> list[Any] | float:
        key = (src, dst)
        path = self._paths.get(key)
        if path is None:
            links = [self._link(a, b) for a, b in pairwise(self._hops(src, dst))]
            if all(isinstance(d, float) for d in links):
                path = sum(links)  # summed in path order, as the draws would be
            else:
                path = [(lambda v=d: v) if isinstance(d, float) else d for d in links]
            self._paths[key] = path
        return path

    def _hops(self, src: str, dst: str) -> list[str]:
        if self.star:  # a tree: through the coordinator unless one end is it
            if COORDINATOR in (src, dst):
                return [src, dst]
            return [src, COORDINATOR, dst]
        import networkx as nx  # only a network with explicit links needs a graph search

        if self._graph is None:  # once per topology
            g: Any = nx.Graph()
            for (a, b), dist in self._edges.items():
                g.add_edge(a, b, dist=dist, mean=dist.mean_value())
            self._graph = g
        tree = self._trees.get(src)
        if tree is None:  # one shortest-path search per source, for every destination
            tree = self._trees[src] = nx.single_source_dijkstra_path(
                self._graph, src, weight="mean"
            )
        return tree[dst]

    def _link(self, a: str, b: str) -> Any:
        key = (a, b)
        got = self._links.get(key)
        if got is None:
            dist = self._edges[key]
            if isinstance(dist, Constant):
                got = float(dist.value)  # a constant link draws nothing
            else:
                got = lean_sampler(dist, stream(self._seed, f"net:{a}>{b}"))
            self._links[key] = got
        return got

    def delay(self, src: str, dst: str) -> float:
        if src == dst:
            return 0.0
        path = self._path(src, dst)
        if path.__class__ is float:
            return path
        return sum(draw() for draw in path)  # type: ignore[union-attr]

    def mean_delay(self, src: str, dst: str) -> float:
        """The mean delay of the path from ``src`` to ``dst`` (no draw: a static fact)."""
        if src == dst:
            return 0.0
        hops = self._hops(src, dst)
        return sum(self._edges[(a, b)].mean_value() for a, b in pairwise(hops))
