"""Bundles as physics: an arrival of a bundle type is ``k`` linked subtasks.

What a bundle *is* belongs to the engine: its subtasks share the bundle's id
and form a family in the ledger that completes when its rule is met (all
``k`` parts, or a quorum of ``m``), with the remainder cancelled. How a
bundle is *scheduled* (a gang assembled on reserved agents, or its parts
dispatched one by one) is the coordinator's (``policies.bundles``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kossim.sim.task import Task

if TYPE_CHECKING:
    from kossim.sim.world import World

__all__ = ["bundle_arrivals"]


def bundle_arrivals(
    world: World, arrive: Callable[[Any, Task], None]
) -> Callable[[Any, Task], None]:
    """Wrap the coordinator's arrival handler: a bundle's subtasks arrive one after the
    other at the same instant (so that any coordinator serves independent and quorum
    bundles; one that assembles gangs collects the ``k`` parts first).

    Each subtask's work is drawn from the type's work distribution on the type's own
    stream, so a seed gives every policy the same bundles.
    """
    specs = [(t.bundle, t.work) for t in world.task_types]
    ledger = world.ledger
    kernel = world.kernel

    def arrived(sender: Any, task: Task) -> None:
        bundle, work = specs[task.tidx]
        if bundle is None:
            arrive(sender, task)
            return
        members = ledger.bundle(task, bundle.k, bundle.need, bundle.mode, work)
        if kernel.log is not None:
            kernel.log.record(
                world.env._now,
                "bundle",
                "world",
                f"bundle {task.id} ({task.type}): {bundle.k} subtasks, {bundle.mode}, "
                f"completes when {bundle.need} finish",
                task,
                {"k": bundle.k, "mode": bundle.mode},
            )
        for member in members:
            arrive(sender, member)

    return arrived
