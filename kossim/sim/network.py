"""The network between the coordinator and the nodes that host agents.

A star from the coordinator to every node with the default latency, plus the
explicit links. A message follows the path of least mean latency (computed
once per pair of nodes, by networkx when explicit links make it a graph
rather than a star); its delay is one draw per link on that path, from a
stream per link. When every latency is the constant 0 the network is
*instant*: the kernel delivers messages by a direct call, with no SimPy event.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

from kossim.config.models import COORDINATOR, Network
from kossim.dists import Constant, Distribution, Sampler, sampler
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
        self._links: dict[tuple[str, str], Sampler] = {}
        self._paths: dict[tuple[str, str], list[Sampler]] = {}

    def _add(self, a: str, b: str, dist: Distribution) -> None:
        self._edges[(a, b)] = self._edges[(b, a)] = dist

    def _path(self, src: str, dst: str) -> list[Sampler]:
        key = (src, dst)
        path = self._paths.get(key)
        if path is None:
            path = [self._link(a, b) for a, b in pairwise(self._hops(src, dst))]
            self._paths[key] = path
        return path

    def _hops(self, src: str, dst: str) -> list[str]:
        if self.star:  # a tree: through the coordinator unless one end is it
            if COORDINATOR in (src, dst):
                return [src, dst]
            return [src, COORDINATOR, dst]
        import networkx as nx  # only a network with explicit links needs a graph search

        g: Any = nx.Graph()
        for (a, b), dist in self._edges.items():
            g.add_edge(a, b, dist=dist)
        hops: list[str] = nx.shortest_path(
            g, src, dst, weight=lambda u, v, d: d["dist"].mean_value()
        )
        return hops

    def _link(self, a: str, b: str) -> Sampler:
        key = (a, b)
        if key not in self._links:
            self._links[key] = sampler(self._edges[key], stream(self._seed, f"net:{a}>{b}"))
        return self._links[key]

    def delay(self, src: str, dst: str) -> float:
        return sum(draw() for draw in self._path(src, dst)) if src != dst else 0.0

    def mean_delay(self, src: str, dst: str) -> float:
        """The mean delay of the path from ``src`` to ``dst`` (no draw: a static fact)."""
        if src == dst:
            return 0.0
        hops = self._hops(src, dst)
        return sum(self._edges[(a, b)].mean_value() for a, b in pairwise(hops))
