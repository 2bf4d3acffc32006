"""What an agent knows of its peers' loads: the lightest peer without a scan of them all.

A delegating agent learns loads only from messages (a delegation carries its
sender's load, gossip carries a peer's load) and from what it did itself (a
peer it passed a task to is one task busier). :class:`PeerLoads` keeps those
numbers and, per skill set, a heap of the peers able to serve it, so that the
lightest one costs O(log k) per decision and per piece of news, never a look
at every peer. Stale heap entries are skipped when they surface, and the heap
is rebuilt when they outnumber the live ones.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable

__all__ = ["PeerLoads"]

Entry = tuple[float, int, int, int]
"""``(load, distance after me in index order, peer index, version)``."""


class PeerLoads:
    """Loads heard of, by agent index, and the lightest eligible peer per skill set."""

    __slots__ = ("_eligible", "_heaps", "_member_of", "known", "me", "version")

    def __init__(self, me: int, n: int, eligible: Callable[[tuple[str, ...]], list[int]]) -> None:
        self.me = me
        self.known = [0.0] * n  # nothing heard yet: assumed idle
        self.version = [0] * n
        self._eligible = eligible
        self._heaps: dict[tuple[str, ...], list[Entry]] = {}
        self._member_of: list[list[tuple[str, ...]]] = [[] for _ in range(n)]

    def _entry(self, i: int) -> Entry:
        """Lightest first; ties go to the nearest peer after this agent in index order."""
        return (self.known[i], (i - self.me) % len(self.known), i, self.version[i])

    def _heap(self, skills: tuple[str, ...]) -> list[Entry]:
        heap = self._heaps.get(skills)
        if heap is None:
            members = self._eligible(skills)
            heap = self._heaps[skills] = [self._entry(i) for i in members]
            heapq.heapify(heap)
            for i in members:
                self._member_of[i].append(skills)
        return heap

    def learned(self, i: int, load: float) -> None:
        """News of peer ``i``'s load: O(log k) per skill set the peer serves."""
        self.known[i] = load
        self.version[i] += 1
        entry = self._entry(i)
        for skills in self._member_of[i]:
            heap = self._heaps[skills]
            heapq.heappush(heap, entry)
            members = self._eligible(skills)
            if len(heap) > 4 * len(members) + 8:  # mostly stale: rebuild
                heap[:] = [self._entry(j) for j in members]
                heapq.heapify(heap)

    def lightest(self, skills: tuple[str, ...], exclude: int) -> int:
        """The lightest peer known for ``skills``, other than ``exclude`` unless it is the
        only one; -1 when no peer serves ``skills``."""
        heap = self._heap(skills)
        version = self.version
        aside = []
        best = -1
        while heap:
            _, _, i, v = heap[0]
            if v != version[i]:
                heapq.heappop(heap)  # stale: a newer entry exists
            elif i == exclude:
                aside.append(heapq.heappop(heap))
            else:
                best = i
                break
        for entry in aside:
            heapq.heappush(heap, entry)
        return exclude if best < 0 and aside else best
