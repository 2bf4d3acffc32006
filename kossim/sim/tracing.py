"""``--trace``: the world's verbs wrapped to log each task's arrival, starts and ending.

Tracing swaps wrappers in for the verbs that take a task through its life, so
that an untraced run pays nothing for the execution log.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kossim.sim.eventlog import EventLog
from kossim.sim.task import ABANDONED, DONE, REJECTED, RENEGED, RUNNING, Task

if TYPE_CHECKING:
    from kossim.sim.agent import Agent
    from kossim.sim.world import World

__all__ = ["trace_tasks"]


def trace_tasks(world: World, log: EventLog) -> None:
    """``--trace``: log each task's arrival, starts and ending by wrapping the verbs that
    take them (so that an untraced run pays nothing)."""
    arrive, finish = world._arrive, world.finish

    def arrived(sender: Any, task: Task) -> None:
        log.task(world.env._now, "arrive", task, "world", f"task {task.id} ({task.type})")
        arrive(sender, task)

    def finished(task: Task) -> None:
        before = world.in_system
        finish(task)
        if world.in_system < before:  # recorded: the task ended (not a part, copy or shadow)
            kind = _ENDINGS[task.state]
            who = world.agents[task.agent].name if task.agent >= 0 else "world"
            if task.state == RENEGED:
                why = f"task {task.id} reneged: not started {task.end - task.arrival:.4g} "
                why += f"after arrival, its patience ({task.type})"
            else:
                why = f"task {task.id} {kind.rstrip('e')}ed, attempt {task.attempts}"
            log.task(task.end, kind, task, who, why)

    world._arrive = arrived
    world.finish = finished  # type: ignore[method-assign]
    for actor, agent in zip(world.agent_actors, world.agents, strict=True):
        actor.ctx.start = _traced_start(log, agent)


_ENDINGS = {DONE: "complete", ABANDONED: "abandon", REJECTED: "reject", RENEGED: "renege"}


def _traced_start(log: EventLog, agent: Agent) -> Any:
    start = agent.start

    def started(task: Task) -> None:
        start(task)
        if task.state == RUNNING and task.agent == agent.index:
            log.task(
                agent.world.env._now,
                "start",
                task,
                agent.name,
                f"task {task.id} on {agent.name}, attempt {task.attempts}",
            )

    return started
