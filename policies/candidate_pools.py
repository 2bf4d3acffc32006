"""The coordinator's candidate pools (:mod:`kossim.sim.pool`), kept as its views change.

Push: per skill set, the skilled agents believed up (entered and left on
failure and recovery). Pull without a free list (skill sets differ, or role
tiers): per skill set, those up with a free slot, entered and left as a view's
queue length crosses its capacity (the view calls back, ``on_queue``) and on
failure and recovery. A router gets the pool of the task's skills as its
candidates: the same agents, in the same index order, as a scan would find.
"""

from __future__ import annotations

from typing import Any

from kossim.sim.agent import AgentState
from kossim.sim.pool import INDEXABLE, IndexedState, Pool

__all__ = ["CandidatePools"]


class CandidatePools:
    """Mixin of the queueing coordinator: its pools of candidates per skill set."""

    views: list[AgentState]
    indexes: tuple[str, ...]
    _pools: dict[tuple[str, ...], Pool]
    free_pools: dict[tuple[str, ...], Pool] | None
    _skilled_for: Any

    def _view_class(self, ctx: Any, pull: bool, tiers: bool) -> type[AgentState]:
        """Plain views, or views that report their load: for a router that declares
        ``indexes``, and for pull dispatch without a free list (its pools of free slots)."""
        kinds = set(ctx.task_skills)
        skilled = {tuple(p.index for p in ctx.profiles if p.proficiency(k) > 0) for k in kinds}
        self.free_pools = {} if pull and (len(skilled) > 1 or tiers) else None
        indexed = set(self.indexes) & set(INDEXABLE) or self.free_pools is not None
        return IndexedState if indexed else AgentState

    def _watch_slots(self) -> None:
        if self.free_pools is not None:
            for v in self.views:
                v.on_queue = self._slot_change  # type: ignore[attr-defined]

    def _pools_mark(self, view: AgentState, up: bool) -> None:
        """``view`` went down or came back up: it leaves or enters its pools."""
        for skills, pool in self._pools.items():
            if view.proficiency(skills) > 0:
                (pool.enter if up else pool.leave)(view)
        if self.free_pools is not None and view.queue_length < view.capacity:
            self._refree(view, up)

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
        """A view's queue length changed: it enters or leaves the pools of free slots."""
        if view.up and (old < view.capacity) != (new < view.capacity):
            self._refree(view, new < view.capacity)

    def _refree(self, view: AgentState, free: bool) -> None:
        assert self.free_pools is not None
        for skills, pool in self.free_pools.items():
            if view.proficiency(skills) > 0:
                (pool.enter if free else pool.leave)(view)
