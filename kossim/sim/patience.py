"""Patience: a task not started within its patience leaves the system (reneging).

Patience is a property of the task (the customer's, not a policy's): a task
type's ``patience`` distribution is drawn at each arrival on the named stream
``patience:<type>``, so every policy meets the same impatient workload. The
timer is physics; what the holders of the task do about it is theirs: the
task is recorded at once (``RENEGED``, counted in ``abandoned`` and in
``reneged``) and marked cancelled, so that wherever it still sits it goes no
further. An agent's slot discards it (``ledger.discard``, as a lost copy) and
the agent reports the ending as usual; a coordinator that keeps a waiting
queue is told at once through its ``on_renege`` handler, so the task leaves
that queue now instead of taking a dispatch later. A task with copies in play
(requeue after a suspicion) no longer reneges: its family decides its ending.

A run whose task types have no patience never builds the wrapper, so its
arrivals pay nothing for the feature.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from simpy.events import Timeout

from kossim.sim.task import RENEGED, WAITING, Task

if TYPE_CHECKING:
    from kossim.sim.world import World

__all__ = ["patient_arrivals"]

Arrive = Callable[[Any, Task], None]


def patient_arrivals(world: World, arrive: Arrive) -> Arrive:
    """``arrive`` preceded by a patience timer for each task of a type that has one."""
    env, types = world.env, world.task_types

    def renege(ev: Timeout) -> None:
        task: Task = ev._value
        if task.start >= 0 or task.end >= 0 or task.cancelled or task.id in world.ledger.families:
            return
        waiting = task.state == WAITING
        task.state = RENEGED
        world.finish(task)
        task.cancelled = True
        if waiting:
            withdraw = getattr(world.coordinator, "on_renege", None)
            if withdraw is not None:
                withdraw(None, task)

    def patient(sender: Any, task: Task) -> None:
        draw = types[task.tidx].patience
        if draw is not None:
            Timeout(env, draw(), task).callbacks.append(renege)
        arrive(sender, task)

    return patient
