"""What the per-task metrics of one scope need, as sums that merge.

A :class:`Tally` holds counts, sums and a quantile source of the tasks of a
scope. Built once from a run's whole columns (with :class:`Exact` quantiles)
it gives exactly the figures the columns give; built a chunk of finished
tasks at a time and merged (with a :class:`~kossim.analysis.sketch.Sketch`),
it gives the same counts, the same means up to the order of a floating-point
sum, and quantiles within the sketch's relative error, in memory that does
not grow with the number of tasks.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from kossim.analysis.sketch import Sketch
from kossim.states import ABANDONED, DONE, DROPPED, REJECTED, RENEGED

__all__ = ["Exact", "Quantiles", "Tally"]


class Quantiles(Protocol):
    def quantile(self, q: float) -> float: ...

    def quantiles(self, qs: list[float] | np.ndarray) -> list[float]: ...


class Exact:
    """Exact quantiles of the values themselves (``np.percentile``)."""

    __slots__ = ("values",)

    def __init__(self, values: np.ndarray) -> None:
        self.values = values

    def quantile(self, q: float) -> float:
        if self.values.size == 0:
            return float("nan")
        return float(np.percentile(self.values, q))

    def quantiles(self, qs: list[float] | np.ndarray) -> list[float]:
        if self.values.size == 0:
            return [float("nan")] * len(qs)
        return [float(v) for v in np.percentile(self.values, qs)]


def _mean(total: float, n: int) -> float:
    return total / n if n else float("nan")


class Tally:
    """Counts and sums of one scope's tasks; ``sojourn`` answers its quantiles."""

    __slots__ = (
        "abandoned",
        "done",
        "dropped",
        "handoff_sum",
        "hops_sum",
        "judged",
        "missed",
        "n",
        "on_time",
        "rejected",
        "reneged",
        "retries",
        "sojourn",
        "sojourn_sum",
        "wait_pos",
        "wait_sum",
    )

    def __init__(self, sojourn: Quantiles) -> None:
        self.sojourn = sojourn
        self.n = self.done = self.abandoned = self.rejected = self.reneged = self.dropped = 0
        self.wait_pos = self.retries = self.missed = self.judged = self.hops_sum = 0
        self.on_time = 0  # completed by the deadline (or with none): goodput's count
        self.wait_sum = self.sojourn_sum = self.handoff_sum = 0.0

    @classmethod
    def of(
        cls, cols: dict[str, np.ndarray], sel: np.ndarray, end: float, sketch: bool = False
    ) -> Tally:
        """The tally of the tasks ``sel`` selects; ``end`` judges live tasks' deadlines."""
        state = cols["state"][sel]
        done = state == DONE
        reneged = state == RENEGED
        rejected = state == REJECTED
        abandoned = (state == ABANDONED) | reneged  # reneging is abandonment, for a reason
        unserved = abandoned | rejected
        arrival = cols["arrival"][sel]
        ends = cols["end"][sel]
        sojourn = (ends - arrival)[done]
        wait = (cols["start"][sel] - arrival)[done]
        deadline = cols["deadline"][sel]
        has_dl = np.isfinite(deadline)
        finished_late = done & (ends > deadline)
        overdue_live = (~done) & (~unserved) & (deadline < end)
        judged = has_dl & (done | unserved | overdue_live)
        missed = has_dl & (finished_late | unserved | overdue_live)
        if sketch:
            sk = Sketch()
            sk.add(sojourn)
            t = cls(sk)
        else:
            t = cls(Exact(sojourn))
        t.n = int(state.size)
        t.done = int(done.sum())
        t.abandoned = int(abandoned.sum())
        t.rejected = int(rejected.sum())
        t.reneged = int(reneged.sum())
        t.dropped = int((state == DROPPED).sum())
        t.wait_sum = float(wait.sum())
        t.wait_pos = int((wait > 0).sum())
        t.sojourn_sum = float(sojourn.sum())
        t.retries = int(np.maximum(cols["attempts"][sel].astype(np.int64) - 1, 0).sum())
        t.missed = int(missed.sum())
        t.on_time = int((done & ~finished_late).sum())
        t.judged = int(judged.sum())
        t.hops_sum = int(cols["hops"][sel][done].astype(np.int64).sum())
        t.handoff_sum = float(cols["handoff"][sel][done].sum())
        return t

    def merge(self, other: Tally) -> None:
        """Add ``other``'s tasks (both must hold sketches)."""
        assert isinstance(self.sojourn, Sketch) and isinstance(other.sojourn, Sketch)
        self.sojourn.merge(other.sojourn)
        for name in self.__slots__:
            if name != "sojourn":
                setattr(self, name, getattr(self, name) + getattr(other, name))

    @property
    def in_flight(self) -> int:
        """Tasks in no terminal state (reneged ones are among the abandoned), not dropped."""
        return self.n - self.done - self.abandoned - self.rejected - self.dropped

    def values(self, span: float) -> dict[str, float]:
        n, done = self.n, self.done
        q = self.sojourn.quantile
        return {
            "completed": float(done),
            "abandoned": float(self.abandoned),
            "rejected": float(self.rejected),
            "rejection_rate": float(self.rejected) / n if n else float("nan"),
            "reneged": float(self.reneged),
            "dropped": float(self.dropped),
            "wait_mean": _mean(self.wait_sum, done),
            "wait_prob": self.wait_pos / done if done else float("nan"),
            "sojourn_mean": _mean(self.sojourn_sum, done),
            "sojourn_p50": q(50),
            "sojourn_p95": q(95),
            "sojourn_p99": q(99),
            "throughput": float(done) / span if span > 0 else float("nan"),
            "goodput": float(self.on_time) / span if span > 0 else float("nan"),
            "retries": float(self.retries),
            "deadline_miss_rate": self.missed / self.judged if self.judged else float("nan"),
            "hops_mean": _mean(float(self.hops_sum), done),
            "delegation_delay_mean": _mean(self.handoff_sum, done),
        }
