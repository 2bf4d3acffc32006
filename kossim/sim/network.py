"""The network between the coordinator and the nodes that host agents.

A networkx graph: a star from the coordinator to every node with the default
latency, plus the explicit links. A message follows the path of least mean
latency (computed once); its delay is one draw per link on that path, from a
stream per link. When every latency is the constant 0 the network is
*instant*: messages are delivered by a direct call, with no SimPy event.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise
from typing import Any

import networkx as nx
from simpy import Environment
from simpy.events import Timeout

from kossim.config.models import COORDINATOR, Network
from kossim.dists import Constant, Sampler, sampler
from kossim.sim.streams import stream

__all__ = ["Net"]


class Net:
    """Delivers messages with link delays and counts them."""

    def __init__(self, env: Environment, spec: Network, nodes: list[str], seed: int) -> None:
        self.env = env
        self.messages = 0
        self.measure_from = 0.0
        g: nx.Graph = nx.Graph()
        g.add_node(COORDINATOR)
        for n in nodes:
            g.add_edge(COORDINATOR, n, dist=spec.latency)
        for link in spec.links:
            g.add_edge(link.a, link.b, dist=link.latency)
        self.graph = g
        self.instant = all(
            isinstance(d, Constant) and d.value == 0 for *_, d in g.edges(data="dist")
        )
        self._seed = seed
        self._links: dict[tuple[str, str], Sampler] = {}
        self._paths: dict[tuple[str, str], list[Sampler]] = {}

    def _path(self, src: str, dst: str) -> list[Sampler]:
        key = (src, dst)
        path = self._paths.get(key)
        if path is None:
            hops = nx.shortest_path(
                self.graph, src, dst, weight=lambda u, v, d: d["dist"].mean_value()
            )
            path = [self._link(a, b) for a, b in pairwise(hops)]
            self._paths[key] = path
        return path

    def _link(self, a: str, b: str) -> Sampler:
        key = (a, b)
        if key not in self._links:
            self._links[key] = sampler(
                self.graph.edges[a, b]["dist"], stream(self._seed, f"net:{a}>{b}")
            )
        return self._links[key]

    def delay(self, src: str, dst: str) -> float:
        return sum(draw() for draw in self._path(src, dst)) if src != dst else 0.0

    def send(self, src: str, dst: str, deliver: Callable[[Any], None], payload: Any) -> None:
        """Deliver ``payload`` to ``deliver`` after the path delay from ``src`` to ``dst``."""
        if self.env._now >= self.measure_from:
            self.messages += 1
        if self.instant:
            deliver(payload)
            return
        ev = Timeout(self.env, self.delay(src, dst), (deliver, payload))
        ev.callbacks.append(_deliver)


def _deliver(ev: Timeout) -> None:
    deliver, payload = ev._value
    deliver(payload)
