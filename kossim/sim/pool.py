"""Candidates with indexes: routing decisions in O(log N), not a scan of the fleet.

The coordinator hands a router its candidates as a :class:`Pool`: a plain
``list`` of agent views in index order (so a router that scans a sequence
works unchanged), kept up to date as agents fail, recover, fill and free
their slots, and carrying indexes a router may query instead of scanning:

* ``pool.after(i)``: the first candidate with index ``>= i`` (round robin);
* ``pool.least(attr, work=0.0)``: the candidates minimising
  ``getattr(view, attr) + work / rate`` in index order, where ``rate`` is the
  view's ``speed x proficiency`` for the pool's skills (``work = 0``: the
  plain minimum of ``attr``, as ``jsq`` wants; ``work = task.work`` on
  ``work_outstanding``: the earliest expected finish, as ``least_work``);
* ``pool.fastest()``: the candidates of the highest ``rate``, in index order.

* ``pool.partition(name, key)``: the members grouped by ``key(view)``, each
  class with its ``work_outstanding`` indexed (:class:`ValueIndex`): a router
  whose score is monotone in the outstanding work within a class finds its
  minimisers class by class (``role_based``); ``pool.reclass(name, view)``
  when a view's key changes.

``least`` is indexed for the attributes a router declares in its class
attribute ``indexes`` (``"queue_length"``, ``"work_outstanding"``;
``"rate"`` keeps the members of each rate, for ``fastest``; ``"classes"``
makes views report their load, for ``partition``); the coordinator
then keeps views that report their changes to the pools they are in. An
attribute not declared is answered by a scan, the same answer more slowly.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left, insort
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from kossim.sim.agent import AgentState

__all__ = [
    "INDEXABLE",
    "INDEX_FROM",
    "WATCHED",
    "IndexedState",
    "Partition",
    "Pool",
    "Tied",
    "ValueIndex",
]

INDEXABLE = ("queue_length", "work_outstanding")
#: the indexes a router may declare that need views reporting their load
WATCHED = (*INDEXABLE, "classes")
#: Fleets smaller than this get no indexes (the coordinator ignores a router's ``indexes``):
#: keeping them costs more than a scan of so few views (measured, M/M/c at rho 0.9: the
#: indexed jsq, least_work and role_based break even with their scans at 30-50 agents and
#: cost 3-6 us more per task at 10). The answers are the same either way.
INDEX_FROM = 40


class ValueIndex:
    """Agent indices by value: a sorted list of indices per value, a lazy heap of values.

    The heap holds each value at most once (``held``); a value whose bucket
    empties stays there, stale, until it surfaces or the heap is rebuilt.
    """

    __slots__ = ("buckets", "heap", "held")

    def __init__(self) -> None:
        self.buckets: dict[Any, list[int]] = {}
        self.heap: list[Any] = []
        self.held: set[Any] = set()

    def add(self, i: int, value: Any) -> None:
        b = self.buckets.get(value)
        if b is None:
            self.buckets[value] = [i]
            if value not in self.held:
                self.held.add(value)
                heapq.heappush(self.heap, value)
                if len(self.heap) > 2 * len(self.buckets) + 32:  # drop stale values, amortised
                    self.heap = list(self.buckets)
                    heapq.heapify(self.heap)
                    self.held = set(self.heap)
        else:
            insort(b, i)

    def remove(self, i: int, value: Any) -> None:
        b = self.buckets[value]
        if len(b) == 1:
            del self.buckets[value]  # its heap entry goes stale, dropped when it surfaces
        else:
            del b[bisect_left(b, i)]

    def move(self, i: int, old: Any, new: Any) -> None:
        if old != new:
            self.remove(i, old)
            self.add(i, new)

    def minimum(self) -> Any:
        heap, buckets = self.heap, self.buckets
        while heap[0] not in buckets:
            self.held.discard(heapq.heappop(heap))
        return heap[0]

    def upto(self, ok: Any) -> list[Any]:
        """The live values ``v`` with ``ok(v)``, given that ``ok`` holds on a prefix of the
        values in order (a depth-first walk of the heap, pruned where ``ok`` fails)."""
        heap, buckets = self.heap, self.buckets
        out, todo, n = [], [0], len(heap)
        while todo:
            j = todo.pop()
            v = heap[j]
            if ok(v):
                if v in buckets:
                    out.append(v)
                todo.extend(k for k in (2 * j + 1, 2 * j + 2) if k < n)
        return out


class Tied(Sequence[Any]):
    """Views by agent index, in index order, without building a list of them."""

    __slots__ = ("_indices", "_views")

    def __init__(self, indices: list[int], views: Sequence[Any]) -> None:
        self._indices = indices
        self._views = views

    def __len__(self) -> int:
        return len(self._indices)

    def __getitem__(self, k: Any) -> Any:
        if isinstance(k, slice):
            return [self._views[i] for i in self._indices[k]]
        return self._views[self._indices[k]]


class IndexedState(AgentState):
    """A view that tells the indexes it is in when its load changes."""

    __slots__ = ("_ql", "_wo", "on_queue", "watch_ql", "watch_wo")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.watch_ql: list[ValueIndex] = []
        self.watch_wo: list[ValueIndex] = []
        #: called as ``on_queue(view, old, new)`` after the indexes moved (pools of free slots)
        self.on_queue: Any = None
        super().__init__(*args, **kwargs)

    @property
    def queue_length(self) -> int:
        return self._ql

    @queue_length.setter
    def queue_length(self, n: int) -> None:
        old = getattr(self, "_ql", n)
        self._ql = n
        if n != old:
            for ix in self.watch_ql:
                ix.move(self.index, old, n)
            if self.on_queue is not None:
                self.on_queue(self, old, n)

    @property
    def work_outstanding(self) -> float:
        return self._wo

    @work_outstanding.setter
    def work_outstanding(self, w: float) -> None:
        old = getattr(self, "_wo", w)
        self._wo = w
        if w != old:
            for ix in self.watch_wo:
                ix.move(self.index, old, w)


class Partition:
    """A pool's members by class (``key(view)``), each class's ``work_outstanding``
    indexed; an emptied class is dropped, so the classes are the live ones."""

    __slots__ = ("classes", "key", "of")

    def __init__(self, key: Callable[[Any], Any]) -> None:
        self.key = key
        self.classes: dict[Any, ValueIndex] = {}
        self.of: dict[int, Any] = {}  # member index -> its class

    def enter(self, v: Any) -> None:
        k = self.of[v.index] = self.key(v)
        ix = self.classes.get(k)
        if ix is None:
            ix = self.classes[k] = ValueIndex()
        ix.add(v.index, v.work_outstanding)
        v.watch_wo.append(ix)

    def leave(self, v: Any) -> None:
        k = self.of.pop(v.index)
        ix = self.classes[k]
        ix.remove(v.index, v.work_outstanding)
        v.watch_wo.remove(ix)
        if not ix.buckets:
            del self.classes[k]


class Pool(list):
    """The candidates: views in index order, with the indexes of :mod:`kossim.sim.pool`."""

    def __init__(
        self,
        views: Sequence[AgentState],
        members: Iterable[AgentState] = (),
        skills: tuple[str, ...] | None = (),
        indexes: Iterable[str] = (),
    ) -> None:
        super().__init__()
        self._at: list[int] = []  # the members' indices, beside them: bisection without a key
        self.views = views
        self.skills = skills
        wanted = set(indexes)
        ranked = wanted & {"rate", *INDEXABLE}
        self._rates: dict[float, list[int]] | None = {} if ranked else None
        self._ix: dict[str, dict[float, ValueIndex]] = {a: {} for a in INDEXABLE if a in wanted}
        self._parts: dict[Any, Partition | None] = {}
        for v in members:
            self.enter(v)

    def rate(self, v: AgentState) -> float:
        return v.speed * v.proficiency(self.skills) if self.skills else v.speed

    # -- membership ---------------------------------------------------------------
    def enter(self, v: AgentState) -> None:
        k = bisect_left(self._at, v.index)
        self._at.insert(k, v.index)
        self.insert(k, v)
        if self._parts:
            for part in self._parts.values():
                if part is not None:
                    part.enter(v)
        if self._rates is None:
            return
        r = self.rate(v)
        insort(self._rates.setdefault(r, []), v.index)
        for attr, classes in self._ix.items():
            ix = classes.get(r)
            if ix is None:
                ix = classes[r] = ValueIndex()
            ix.add(v.index, getattr(v, attr))
            _watch(v, attr).append(ix)

    def leave(self, v: AgentState) -> None:
        k = bisect_left(self._at, v.index)
        del self._at[k]
        del self[k]
        if self._parts:
            for part in self._parts.values():
                if part is not None:
                    part.leave(v)
        if self._rates is None:
            return
        r = self.rate(v)
        members = self._rates[r]
        del members[bisect_left(members, v.index)]
        for attr, classes in self._ix.items():
            ix = classes[r]
            ix.remove(v.index, getattr(v, attr))
            _watch(v, attr).remove(ix)

    def has(self, index: int) -> bool:
        """Whether the agent of ``index`` is a member."""
        at = self._at
        k = bisect_left(at, index)
        return k < len(at) and at[k] == index

    def partition(self, name: Any, key: Callable[[Any], Any]) -> Partition | None:
        """The members by ``key(view)`` (built on the first ask under ``name``, then kept
        as members enter and leave); None when the views do not report their load."""
        if name in self._parts:
            return self._parts[name]
        views = self.views
        part = Partition(key) if views and hasattr(views[0], "watch_wo") else None
        if part is not None:
            for v in self:
                part.enter(v)
        self._parts[name] = part
        return part

    def reclass(self, name: Any, v: Any) -> None:
        """``v``'s key under partition ``name`` may have changed: it moves to its class."""
        part = self._parts.get(name)
        if part is not None and v.index in part.of and part.key(v) != part.of[v.index]:
            part.leave(v)
            part.enter(v)

    # -- queries -------------------------------------------------------------------
    def after(self, index: int) -> Any:
        """The first candidate with index ``>= index``, or None."""
        k = bisect_left(self._at, index)
        return self[k] if k < len(self) else None

    def least(self, attr: str, work: float = 0.0) -> Sequence[Any]:
        """The candidates minimising ``attr + work / rate``, in index order."""
        classes = self._ix.get(attr)
        if classes is None:
            return self._scan(attr, work)
        best: Any = None
        found: list[tuple[float, ValueIndex]] = []
        for r, ix in classes.items():
            if not ix.buckets:
                continue
            low = ix.minimum()
            score = low + work / r if work else low
            if best is None or score < best:
                best, found = score, [(r, ix)]
            elif score == best:
                found.append((r, ix))
        if best is None:
            return []
        if not work:
            runs = [ix.buckets[ix.minimum()] for _, ix in found]
        else:
            runs = []
            for r, ix in found:
                share = work / r
                runs += [ix.buckets[v] for v in ix.upto(lambda v, s=share: v + s <= best)]
        indices = runs[0] if len(runs) == 1 else sorted(i for run in runs for i in run)
        return Tied(indices, self.views)

    def fastest(self) -> Sequence[Any]:
        """The candidates of the highest rate (speed x proficiency), in index order."""
        if self._rates is None:
            return self._scan_fastest()
        live = [r for r, m in self._rates.items() if m]
        return Tied(self._rates[max(live)], self.views) if live else []

    def _scan(self, attr: str, work: float) -> list[Any]:
        if not self:
            return []
        if work:
            values = [getattr(v, attr) + work / self.rate(v) for v in self]
        else:
            values = [getattr(v, attr) for v in self]
        best = min(values)
        return [v for v, x in zip(self, values, strict=True) if x == best]

    def _scan_fastest(self) -> list[Any]:
        if not self:
            return []
        rates = [self.rate(v) for v in self]
        best = max(rates)
        return [v for v, r in zip(self, rates, strict=True) if r == best]


def _watch(v: Any, attr: str) -> list[ValueIndex]:
    return v.watch_ql if attr == "queue_length" else v.watch_wo
