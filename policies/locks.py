"""Lock services: who may touch a shared resource, granted by message, under leases.

A lock service runs as the actor ``lock:<R>`` beside each resource ``R``
(:mod:`kossim.sim.locks` places it). Its protocol, from the side of a
``locking`` agent (:mod:`policies.locking`):

* ``acquire (task, mode, request)``: a request joins the service's FIFO
  queue (one asked again keeps its place); the head is granted as soon as it
  is compatible with the holders (``shared`` with ``shared``; ``exclusive``
  alone). No barging: a shared request behind a waiting exclusive one waits
  too, so writers never starve.
* ``granted (task, request, token, renew_every)``: each grant carries the
  next fencing token of the resource (1, 2, 3, ... in grant order) and the
  lease's terms.
* ``renew token``: the holder's renewal; the lease then runs ``duration``
  from the moment the service received it.
* ``release token``: the holder is done; the next request is granted.

``lease`` expires a lease ``duration`` after the last renewal it received:
purely by the service's clock, so a holder that crashed, is paused or cut off
by a partition simply stops renewing and loses it. ``held`` grants locks with
no lease: a lock is held until released, so a holder that crashes under
``requeue`` (its process and its task gone) holds its resource for ever, and
every later request waits (the naive baseline). ``none`` runs no service: a
scenario whose task types lock resources is refused with it.

With ``contended_after: B``, a request still waiting ``B`` after it reached the
service is *contended*: the service reports it (``lock_contended``) and asks the
policy's arbiter (event ``lock_contended``; facts ``count``, ``resource``,
``holder``, ``waited``, ``ahead``), then carries out the decision:

* ``wait``: the request keeps its place; with ``recheck: d`` the arbiter is asked
  again after ``d`` if it still waits (without, never again for this request);
* ``escalate``: the task's priority rises by ``step`` tiers and its request moves
  ahead of the waiting requests of a lower priority (a higher number) just before
  it, never past one of an equal or higher priority (FIFO among equals); asked
  again after another ``B``;
* ``abort`` and ``reassign``: the request leaves the queue and the agent is told
  (``withdrawn (task, request, resource, action, reason)``): it frees the slot,
  releases the locks the task already holds and ends the task (``abort``:
  abandoned, ``done`` to its coordinator) or sends it back to its coordinator
  (``reassign``: ``returned``, dispatched anew).

Without an arbiter the decision is ``wait`` at no cost: a request is reported once.
"""

from __future__ import annotations

from collections import deque
from typing import Any, ClassVar

from pydantic import Field, model_validator

from kossim.arbiter import Decision
from kossim.policy import Behaviour, Params
from kossim.sim.kernel import Actor
from kossim.sim.task import Task

__all__ = ["HeldLocks", "LeaseParams", "Leases", "NoLocks"]


class NoLocks(Behaviour):
    """No lock service (the default): task types cannot lock resources."""

    kind = "locks"
    id = "none"
    description = "no lock service; task types that lock resources are refused"
    grants: ClassVar[bool] = False


_CONTENDED = (
    "a request still waiting this long is reported contended (lock_contended, a "
    "lock_contended line): the place for an arbiter. None: never"
)


class LeaseParams(Params):
    duration: float = Field(
        default=5.0, gt=0, description="a lease ends this long after its last renewal"
    )
    renew_every: float = Field(default=1.0, gt=0, description="how often holders renew")
    fencing: bool = Field(
        default=True, description="resources refuse writes whose token is older than one written"
    )
    contended_after: float | None = Field(default=None, gt=0, description=_CONTENDED)

    @model_validator(mode="after")
    def _renews_in_time(self) -> LeaseParams:
        if self.renew_every >= self.duration:
            raise ValueError(
                f"renew_every ({self.renew_every:g}) must be below duration "
                f"({self.duration:g}), or every lease would expire between renewals"
            )
        return self


class _Lease:
    __slots__ = ("expires", "holder", "mode", "task", "token")

    def __init__(self, holder: Actor, task: Task, mode: str, token: int, expires: float) -> None:
        self.holder = holder
        self.task = task
        self.mode = mode
        self.token = token
        self.expires = expires  # the last renewal heard (or the grant) + duration


class _Request:
    __slots__ = ("ask", "holder", "mode", "reported", "since", "task")

    def __init__(self, holder: Actor, task: Task, mode: str, ask: int, since: float) -> None:
        self.holder = holder
        self.task = task
        self.mode = mode
        self.ask = ask  # the holder's number for this request (the latest, if asked again)
        self.since = since
        self.reported = False  # reported contended already (lock_contended counts it once)


class Leases(Behaviour):
    """Grant a resource's lock in FIFO order under leases renewed by message, each grant
    with the next fencing token; expire a lease ``duration`` after its last renewal."""

    kind = "locks"
    id = "lease"
    description = "leases renewed by message, expiring by the service's clock; fencing tokens"
    sends: tuple[str, ...] = ("granted", "withdrawn")
    Params: ClassVar[type[Params]] = LeaseParams
    grants: ClassVar[bool] = True

    def on_start(self, ctx: Any) -> None:
        super().on_start(ctx)
        self.duration: float | None = getattr(self.params, "duration", None)
        self.renew_every: float | None = getattr(self.params, "renew_every", None)
        self.bound: float | None = self.params.contended_after
        self.waiting: deque[_Request] = deque()
        self.queued: dict[tuple[str, int, int], _Request] = {}  # by (holder, task, copy)
        self.holders: dict[int, _Lease] = {}
        self.token = 0
        self.raised: dict[int, int] = {}  # lock_contended events so far, by task id

    def on_acquire(self, sender: Actor, request: tuple[Task, str, int]) -> None:
        task, mode, ask = request
        key = (sender.name, task.id, task.copy)
        queued = self.queued.get(key)
        if queued is not None:  # asked again (an answer seemed lost): it keeps its place
            queued.ask = ask
            return
        entry = self.queued[key] = _Request(sender, task, mode, ask, self.ctx.now)
        self.waiting.append(entry)
        self.ctx.requested()
        if self.bound is not None:
            self.ctx.after(self.bound, "contended", (key, entry))
        self._grant()

    def on_contended(self, sender: None, due: tuple[tuple[str, int, int], _Request]) -> None:
        """``contended_after`` past a request (or a ``recheck`` after it): if it still
        waits, the lock is contended beyond the bound; the arbiter decides what to do."""
        key, entry = due
        if self.queued.get(key) is not entry:
            return  # granted or withdrawn meanwhile
        ctx = self.ctx
        task = entry.task
        ahead = next(i for i, e in enumerate(self.waiting) if e is entry)
        waited = ctx.now - entry.since
        n = self.raised[task.id] = self.raised.get(task.id, 0) + 1
        ctx.contended(task, waited, ahead, len(self.holders), again=entry.reported)
        entry.reported = True
        holder = self._holder()
        decision = ctx.arbitrate(
            "lock_contended",
            task,
            count=n,
            resource=ctx.resource,
            holder=holder,
            waited=waited,
            ahead=ahead,
        )
        self._carry_out(key, entry, decision)

    def _holder(self) -> str | None:
        """The agent holding the lease that blocks the queue: an exclusive one if there is
        one, else the oldest; ``None`` if no lease is held."""
        leases = sorted(self.holders.values(), key=lambda lease: lease.token)
        blocking = [lease for lease in leases if lease.mode == "exclusive"] or leases
        return blocking[0].holder.name if blocking else None

    def _carry_out(self, key: tuple[str, int, int], entry: _Request, decision: Decision) -> None:
        ctx = self.ctx
        task = entry.task
        action = decision.action
        why = f" ({decision.reason})" if decision.reason else ""
        if action == "wait":
            if decision.recheck is not None:
                ctx.after(decision.recheck, "contended", (key, entry))
            return
        if action == "escalate":
            task.priority -= decision.step
            waiting = list(self.waiting)
            at = waiting.index(entry)
            del waiting[at]
            while at and waiting[at - 1].task.priority > task.priority:
                at -= 1  # past a waiter of a lower priority, never past an equal or higher
            waiting.insert(at, entry)
            self.waiting = deque(waiting)
            if ctx.tracing:
                ctx.log(
                    "lock_escalate",
                    f"{ctx.resource}: task {task.id} escalated to priority {task.priority}, "
                    f"its request now {waiting.index(entry)} from the head{why}",
                    task,
                    priority=task.priority,
                )
            if self.bound is not None:
                ctx.after(self.bound, "contended", (key, entry))
            self._grant()
            return
        # abort or reassign: the request leaves the queue; its agent ends or returns the task
        self.waiting.remove(entry)
        del self.queued[key]
        ctx.withdrawn(task, entry.holder, ctx.now - entry.since, action, why)
        ctx.send(entry.holder, "withdrawn", (task, entry.ask, ctx.resource, action, why))
        self._grant()  # a withdrawn head may have held up compatible requests behind it

    def _grant(self) -> None:
        """Grant the head of the queue while it is compatible with the holders."""
        ctx = self.ctx
        waiting, holders = self.waiting, self.holders
        while waiting:
            head = waiting[0]
            holder, task, mode = head.holder, head.task, head.mode
            if holders and (
                mode == "exclusive" or any(h.mode == "exclusive" for h in holders.values())
            ):
                return  # contended: the head has waited ``ctx.now - head.since``
            waiting.popleft()
            del self.queued[(holder.name, task.id, task.copy)]
            self.token += 1
            token = self.token
            now = ctx.now
            expires = now + self.duration if self.duration is not None else float("inf")
            holders[token] = _Lease(holder, task, mode, token, expires)
            ctx.granted(task, token, now - head.since, holder)
            ctx.send(holder, "granted", (task, head.ask, token, self.renew_every))
            if self.duration is not None:
                ctx.after(self.duration, "expire", token)

    def on_renew(self, sender: Actor, token: int) -> None:
        lease = self.holders.get(token)
        if lease is None:
            return  # expired or released already: the holder will learn at its write
        lease.expires = self.ctx.now + (self.duration or 0.0)
        self.ctx.renewed()

    def on_expire(self, sender: None, token: int) -> None:
        lease = self.holders.get(token)
        if lease is None:
            return  # released in time
        now = self.ctx.now
        if lease.expires > now:  # renewed since this timer was set
            self.ctx.after(lease.expires - now, "expire", token)
            return
        del self.holders[token]
        self.ctx.expired(lease.task, token, lease.holder, self.duration or 0.0)
        self._grant()

    def on_release(self, sender: Actor, token: int) -> None:
        lease = self.holders.pop(token, None)
        ctx = self.ctx
        if ctx.tracing:
            what = "released" if lease is not None else "released after it expired"
            task = lease.task if lease is not None else None
            ctx.log("lock_release", f"{ctx.resource}: token {token} {what} by {sender.name}", task)
        if lease is not None:
            self._grant()


class HeldLocks(Leases):
    """Grant locks in FIFO order, held until released: no lease, no renewal, no expiry
    (tokens are still issued, and resources check them if ``fencing``)."""

    id = "held"
    description = "locks held until released (no leases): a holder lost in a crash blocks for ever"

    class HeldParams(Params):
        fencing: bool = Field(default=False, description="resources check tokens")
        contended_after: float | None = Field(default=None, gt=0, description=_CONTENDED)

    Params: ClassVar[type[Params]] = HeldParams
