"""The coordinator's candidate pools (:mod:`kossim.sim.pool`), kept as its views change.

Push: per skill set, the skilled agents believed up (entered and left on
failure and recovery). Pull without a free list (skill sets differ, or role
tiers): per skill set, those up with a free slot, entered and left as a view's
queue length crosses its capacity (the view calls back, ``on_queue``) and on
failure and recovery. A router gets the pool of the task's skills as its
candidates: the same agents, in the same index order, as a scan would find.

Gated pools (:meth:`CandidatePools._gated`) narrow a pool further, each by a
key ``(skills, free, room, gate)``: with a free slot, with room under the
agent's ``queue_limit`` (backpressure under push), and a *gate* a subclass
decides (:meth:`CandidatePools._admits`: the trust-gated coordinator's
standings). A view is checked again only when something its membership
depends on changes: failure or recovery, its queue crossing its capacity or
its limit, or the subclass saying its gate moved (:meth:`CandidatePools._regate`),
so a filtered candidate list costs O(log N) per change, not a scan per decision.
"""

from __future__ import annotations

from typing import Any

from kossim.sim import pool as _pool
from kossim.sim.agent import AgentState
from kossim.sim.pool import WATCHED, IndexedState, Pool

__all__ = ["CandidatePools", "gated"]


class CandidatePools:
    """Mixin of the queueing coordinator: its pools of candidates per skill set."""

    views: list[AgentState]
    indexes: tuple[str, ...]
    _pools: dict[tuple[str, ...], Pool]
    free_pools: dict[tuple[str, ...], Pool] | None
    _skilled_for: Any
    #: key (skills or None for any, free slot, room under the limit, gate) -> its pool
    _gates: dict[tuple[tuple[str, ...] | None, bool, bool, str], Pool]
    #: whether gated pools depend on queue lengths (limits under push, or a subclass's gate)
    _gate_load: bool

    def _view_class(self, ctx: Any, pull: bool, tiers: bool) -> type[AgentState]:
        """Plain views, or views that report their load: for a router that declares
        ``indexes``, for pull dispatch without a free list (its pools of free slots), and
        for agents' queue limits under push (the pools of agents with room)."""
        if len(ctx.profiles) < _pool.INDEX_FROM:
            self.indexes = ()  # a scan of a small fleet is cheaper than keeping indexes
        kinds = set(ctx.task_skills)
        skilled = {tuple(p.index for p in ctx.profiles if p.proficiency(k) > 0) for k in kinds}
        self.free_pools = {} if pull and (len(skilled) > 1 or tiers) else None
        self._gates = {}
        self._gate_load = self._gates_load(ctx, pull)
        indexed = set(self.indexes) & set(WATCHED) or self.free_pools is not None or self._gate_load
        return IndexedState if indexed else AgentState

    def _gates_load(self, ctx: Any, pull: bool) -> bool:
        """Whether a gated pool will follow queue lengths: agents' limits under push (a
        subclass whose candidates are filtered under pull says so too)."""
        return not pull and any(p.limit is not None for p in ctx.profiles)

    def _watch_slots(self) -> None:
        if self.free_pools is not None or self._gate_load:
            for v in self.views:
                v.on_queue = self._slot_change  # type: ignore[attr-defined]

    def _pools_mark(self, view: AgentState, up: bool) -> None:
        """``view`` went down or came back up: it leaves or enters its pools."""
        for skills, pool in self._pools.items():
            if view.proficiency(skills) > 0:
                (pool.enter if up else pool.leave)(view)
        if self.free_pools is not None and view.queue_length < view.capacity:
            self._refree(view, up)
        if self._gates:
            self._regate(view)

    def _pool_for(self, skills: tuple[str, ...]) -> Pool:
        pool = self._pools.get(skills)
        if pool is None:
            up = [v for v in self._skilled_for(skills) if v.up]
            pool = self._pools[skills] = Pool(self.views, up, skills, self.indexes)
        return pool

    def _free_pool(self, skills: tuple[str, ...]) -> Pool:
        assert self.free_pools is not None
        pool = self.free_pools.get(skills)
        if pool is None:
            free = [v for v in self._skilled_for(skills) if v.up and v.queue_length < v.capacity]
            pool = self.free_pools[skills] = Pool(self.views, free, skills, self.indexes)
        return pool

    def _slot_change(self, view: AgentState, old: int, new: int) -> None:
        """A view's queue length changed: it enters or leaves the pools of free slots, and
        the gated pools when it crossed its capacity or its limit."""
        cap = view.capacity
        if view.up and (old < cap) != (new < cap):
            if self.free_pools is not None:
                self._refree(view, new < cap)
            if self._gates:
                self._regate(view)
        elif self._gates and view.limit is not None and (old < view.limit) != (new < view.limit):
            self._regate(view)

    def _refree(self, view: AgentState, free: bool) -> None:
        assert self.free_pools is not None
        for skills, pool in self.free_pools.items():
            if view.proficiency(skills) > 0:
                (pool.enter if free else pool.leave)(view)

    def _gate_of(self, task: Any) -> str:
        """The gate a task's candidates pass (a subclass's filter; none here)."""
        return ""

    # -- gated pools ------------------------------------------------------------------
    def _admits(self, view: AgentState, gate: str) -> bool:
        """Whether ``view`` passes ``gate`` (a subclass's filter; the empty gate passes all)."""
        return True

    def _qualifies(
        self, v: AgentState, skills: tuple[str, ...] | None, free: bool, room: bool, gate: str
    ) -> bool:
        return (
            v.up
            and (skills is None or v.proficiency(skills) > 0)
            and (not free or v.queue_length < v.capacity)
            and (not room or v.limit is None or v.queue_length < v.limit)
            and (not gate or self._admits(v, gate))
        )

    def _gated(
        self, skills: tuple[str, ...] | None, free: bool = False, room: bool = False, gate: str = ""
    ) -> Pool:
        """The views up (and skilled, unless ``skills`` is None) that have a free slot
        (``free``), room under their limit (``room``) and pass ``gate``, in index order;
        kept from then on as they change."""
        key = (skills, free, room, gate)
        pool = self._gates.get(key)
        if pool is None:
            base = self.views if skills is None else self._skilled_for(skills)
            members = [v for v in base if self._qualifies(v, skills, free, room, gate)]
            pool = self._gates[key] = Pool(self.views, members, skills, self.indexes)
        return pool

    def _regate(self, view: AgentState) -> None:
        """Something ``view``'s membership depends on changed: it enters or leaves the
        gated pools whose conditions it now meets or no longer meets."""
        for (skills, free, room, gate), pool in self._gates.items():
            want = self._qualifies(view, skills, free, room, gate)
            if want != pool.has(view.index):
                (pool.enter if want else pool.leave)(view)


def gated(method: Any) -> Any:
    """Mark a ``candidates`` method whose push answer is the gated pool of the task's
    skills and :meth:`CandidatePools._gate_of`: filters by room then use that pool."""
    method.gated = True
    return method
