"""Tasks and the queues that hold them (hot path: ``__slots__``, no pydantic)."""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from kossim.states import (  # re-exported: the engine's task states
    ABANDONED,
    CANCELLED,
    DONE,
    DROPPED,
    ORPHANED,
    QUEUED,
    REJECTED,
    RENEGED,
    RUNNING,
    STATE_NAMES,
    SUSPENDED,
    TERMINAL,
    TRANSIT,
    WAITING,
)

__all__ = [
    "ABANDONED",
    "CANCELLED",
    "DONE",
    "DROPPED",
    "ORPHANED",
    "QUEUED",
    "REJECTED",
    "RENEGED",
    "RUNNING",
    "STATE_NAMES",
    "SUSPENDED",
    "TERMINAL",
    "TRANSIT",
    "WAITING",
    "FifoQueue",
    "KeyedQueue",
    "SplitQueue",
    "Task",
    "TaskQueue",
    "make_queue",
]


class Task:
    """One unit of work. ``remaining`` is in work units; service time = work / rate."""

    ev: Any  # the pending completion event while running
    seg: float  # start of the current service segment
    rate: float  # work per unit time on the agent serving it
    svc: float  # service time on the agent it was last sent to
    qseq: int  # push order in a SplitQueue
    part: int  # a bundle's subtask: which of its k parts (unset outside bundles)

    __slots__ = (
        "agent",
        "arrival",
        "attempts",
        "bad",
        "cancelled",
        "copy",
        "deadline",
        "end",
        "ev",
        "fresh",
        "handoff",
        "hops",
        "id",
        "measured",
        "part",
        "priority",
        "qseq",
        "rate",
        "remaining",
        "seg",
        "skills",
        "start",
        "state",
        "svc",
        "tidx",
        "type",
        "work",
    )

    def __init__(
        self,
        id: int,
        type: str,
        tidx: int,
        work: float,
        priority: int,
        deadline: float,
        skills: tuple[str, ...],
        arrival: float,
        measured: bool,
    ) -> None:
        self.id = id
        self.type = type
        self.tidx = tidx
        self.work = work
        self.remaining = work
        self.priority = priority
        self.deadline = deadline
        self.skills = skills
        self.arrival = arrival
        self.measured = measured
        self.start = -1.0
        self.end = -1.0
        self.agent = -1
        self.attempts = 0
        self.hops = 0  # hand-offs from agent to agent (delegation)
        self.handoff = 0.0  # time spent being handed from agent to agent (delegation)
        self.copy = 0  # 0: the original; k: its k-th duplicate
        self.cancelled = False  # a copy whose sibling finished first
        self.bad = False  # its result is bad (drawn by a fallible agent at completion)
        self.fresh = True
        self.state = WAITING
        # ``ev``, ``seg``, ``rate`` and ``svc`` are set when the task is sent and started:
        # leaving them unset here saves work on every arrival.

    def __repr__(self) -> str:
        return f"Task({self.id}, {self.type}, {STATE_NAMES[self.state]})"


class FifoQueue(deque[Task]):
    """First in, first out: a deque (O(1) at both ends, unlike SimPy's list-backed queues).

    Subclassing keeps ``len`` and truth tests in C: they run several times per task.
    """

    __slots__ = ()
    push = deque.append
    pop = deque.popleft

    def peek(self) -> Task:
        return self[0]

    def drain(self) -> list[Task]:
        out = list(self)
        self.clear()
        return out


class KeyedQueue(list[tuple[Any, int, int, Task]]):
    """Smallest ``key(task)`` first, ties by arrival order (task id, then copy); a binary heap."""

    __slots__ = ("_key",)

    def __init__(self, key: Callable[[Task], Any]) -> None:
        super().__init__()
        self._key = key

    def push(self, task: Task) -> None:
        heapq.heappush(self, (self._key(task), task.id, task.copy, task))

    def pop(self) -> Task:  # type: ignore[override]
        return heapq.heappop(self)[3]

    def peek(self) -> Task:
        return self[0][3]

    def remove(self, task: Task) -> None:  # type: ignore[override]
        """Take ``task`` out wherever it is (O(n): for recalls, not the hot path)."""
        for i, entry in enumerate(list.__iter__(self)):
            if entry[3] is task:
                del self[i]
                heapq.heapify(self)
                return
        raise ValueError(f"{task!r} is not in the queue")

    def drain(self) -> list[Task]:
        out = [entry[3] for entry in sorted(list.__iter__(self))]  # (key, id, copy) order
        self.clear()
        return out

    def __iter__(self) -> Iterator[Task]:  # type: ignore[override]
        return (entry[3] for entry in list.__iter__(self))


class TaskQueue(Protocol):
    """What the coordinator and agents need of a queue."""

    def push(self, task: Task) -> None: ...
    def pop(self) -> Task: ...
    def peek(self) -> Task: ...
    def drain(self) -> list[Task]: ...
    def remove(self, task: Task) -> None: ...
    def __len__(self) -> int: ...
    def __iter__(self) -> Iterator[Task]: ...


class SplitQueue:
    """One queue per required-skill set, for pull dispatch when agents differ in skills.

    Tasks needing the same skills have the same candidate agents, so the first
    waiting task that some free agent can take is the best *head* among the
    parts whose tasks have a candidate: a look at one task per skill set per
    decision, instead of a scan of the whole queue.
    """

    __slots__ = ("_discipline", "_pushed", "parts")

    def __init__(self, discipline: Any) -> None:
        self._discipline = discipline
        self._pushed = 0
        self.parts: dict[tuple[str, ...], TaskQueue] = {}

    def order(self, task: Task) -> tuple[Any, int, int]:
        """Position across parts, as one queue would have it: push order for FIFO
        (a requeued task goes to the back), else (key, arrival order, copy)."""
        if self._discipline.fifo:
            return (0, task.qseq, 0)
        return (self._discipline.key(task), task.id, task.copy)

    def push(self, task: Task) -> None:
        task.qseq = self._pushed
        self._pushed += 1
        part = self.parts.get(task.skills)
        if part is None:
            part = self.parts[task.skills] = make_queue(self._discipline)
        part.push(task)

    def heads(self) -> list[Task]:
        """The first task of each non-empty part."""
        return [part.peek() for part in self.parts.values() if part]

    def peek(self) -> Task:
        return min(self.heads(), key=self.order)

    def pop(self) -> Task:
        return self.parts[self.peek().skills].pop()

    def pop_head(self, task: Task) -> None:
        """Remove ``task``, which must head its part."""
        self.parts[task.skills].pop()

    def remove(self, task: Task) -> None:
        self.parts[task.skills].remove(task)

    def drain(self) -> list[Task]:
        out = sorted((t for part in self.parts.values() for t in part.drain()), key=self.order)
        return out

    def __len__(self) -> int:
        return sum(len(part) for part in self.parts.values())

    def __iter__(self) -> Iterator[Task]:
        return (t for part in self.parts.values() for t in part)


def make_queue(discipline: Any) -> TaskQueue:
    """The queue structure a discipline needs."""
    return FifoQueue() if discipline.fifo else KeyedQueue(discipline.key)
