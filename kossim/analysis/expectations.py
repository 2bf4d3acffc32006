"""The models of the ``expect:`` block (validation only; judging is :mod:`kossim.analysis.check`).

Kept free of pandas and scipy so that loading an experiment stays light.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator

from kossim.errors import FieldError
from kossim.report.metrics_meta import METRIC_DIRECTION as _DIRECTION

__all__ = [
    "METRIC_DIRECTION",
    "BaselineExpectation",
    "BetterExpectation",
    "BoundsExpectation",
    "Expectation",
    "GrowthExpectation",
    "WithinExpectation",
    "check_expectations",
]


def _at_text(at: dict[str, Any] | None) -> str:
    return "" if not at else " at " + ", ".join(f"{k}={v}" for k, v in at.items())


METRIC_DIRECTION: dict[str, Literal["lower", "higher"]] = {
    metric: "lower" if sign < 0 else "higher" for metric, sign in _DIRECTION.items() if sign
}
"""Which way is better for metrics where that is unambiguous. Neutral metrics
(``utilization``, ``arrived``) and unknown ones need an explicit ``direction``."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class BetterExpectation(_Strict):
    """``better`` beats ``than`` on ``metric`` at every sweep point (or only ``at``).

    Judged on the mean over seeds of the per-seed paired difference (common
    random numbers). With ``significant: true`` the paired test must also
    reject "no difference" at significance ``level``: a t test, or with
    ``method: bootstrap`` a percentile bootstrap of the differences (for few
    seeds with skewed differences, where the t test's normality is doubtful).
    """

    metric: str
    better: str
    than: str
    scope: str = "all"
    significant: bool = False
    level: float = Field(0.05, gt=0.0, lt=1.0)
    method: Literal["t", "bootstrap"] = "t"
    at: dict[str, Any] | None = None
    direction: Literal["lower", "higher"] | None = None

    @model_validator(mode="after")
    def _known_direction(self) -> BetterExpectation:
        if self.better == self.than:
            raise ValueError(f"better and than name the same policy ({self.better!r})")
        _known_metric(self.metric, "metric")
        if self.direction is None and self.metric not in METRIC_DIRECTION:
            raise ValueError(
                f"metric {self.metric!r} has no known better direction; "
                "add direction: lower or direction: higher"
            )
        return self

    @property
    def resolved_direction(self) -> Literal["lower", "higher"]:
        """The explicit ``direction`` or the table's, which validation guarantees exists."""
        return self.direction or METRIC_DIRECTION[self.metric]

    def describe(self) -> str:
        sig = f", p < {self.level:g}" if self.significant else ""
        return (
            f"{self.metric}[{self.scope}]: {self.better} better than {self.than} "
            f"({self.resolved_direction} is better{sig}){_at_text(self.at)}"
        )


class BoundsExpectation(_Strict):
    """``metric`` lies in ``[min, max]`` for ``policy`` (default: every policy).

    ``on`` picks the statistic bounded: the mean over seeds (default), an end
    of its confidence interval, or every single seed's value.
    """

    metric: str
    policy: str | None = None
    scope: str = "all"
    min: float | None = None
    max: float | None = None
    on: Literal["mean", "ci_low", "ci_high", "every_seed"] = "mean"
    at: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _has_bound(self) -> BoundsExpectation:
        if self.min is None and self.max is None:
            raise ValueError("bounds need min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} exceeds max {self.max}")
        return self

    def describe(self) -> str:
        lo = "-inf" if self.min is None else f"{self.min:g}"
        hi = "inf" if self.max is None else f"{self.max:g}"
        who = self.policy or "every policy"
        return f"{self.metric}[{self.scope}] {self.on} in [{lo}, {hi}] for {who}{_at_text(self.at)}"


class WithinExpectation(_Strict):
    """The mean of ``metric`` is within ``rel`` (relative) or ``abs`` of ``value``.

    Meant for theory checks (an M/M/c mean wait); the result also says whether
    ``value`` lies inside the confidence interval, which is informative but
    not required to pass. ``policy`` defaults to every policy.
    """

    metric: str
    value: float
    policy: str | None = None
    scope: str = "all"
    rel: float | None = Field(None, ge=0.0)
    abs: float | None = Field(None, ge=0.0)
    at: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _one_tolerance(self) -> WithinExpectation:
        if (self.rel is None) == (self.abs is None):
            raise ValueError("within needs exactly one tolerance: rel or abs")
        return self

    @property
    def tolerance(self) -> float:
        return self.abs if self.abs is not None else (self.rel or 0.0) * math.fabs(self.value)

    def describe(self) -> str:
        tol = f"abs {self.abs:g}" if self.abs is not None else f"rel {self.rel:g}"
        who = self.policy or "every policy"
        return (
            f"{self.metric}[{self.scope}] within {tol} of {self.value:g} for {who}"
            f"{_at_text(self.at)}"
        )


class GrowthExpectation(_Strict):
    """How ``metric`` grows along one swept path: the ratio of its mean over seeds at
    the second value of ``growth`` to its mean at the first lies in ``[min_ratio,
    max_ratio]``, for ``policy`` (default: every policy), at every point of the other
    swept paths (or only ``at``).

    Scaling claims are ratios across sweep points ("the busiest manager's load at 256
    agents is at most 2.5 times its load at 16"), which bounds at single points can
    only pin loosely.
    """

    metric: str
    growth: dict[str, list[Any]] = Field(min_length=1, max_length=1)
    policy: str | None = None
    scope: str = "all"
    min_ratio: float | None = Field(None, ge=0.0)
    max_ratio: float | None = Field(None, ge=0.0)
    at: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _two_points_and_a_bound(self) -> GrowthExpectation:
        ((path, values),) = self.growth.items()
        if len(values) != 2:
            raise ValueError(f"growth needs {path}: [from, to], two sweep values")
        if self.at and path in self.at:
            raise ValueError(f"{path!r} is both the growth path and in at")
        if self.min_ratio is None and self.max_ratio is None:
            raise ValueError("growth needs min_ratio, max_ratio or both")
        if (
            self.min_ratio is not None
            and self.max_ratio is not None
            and self.min_ratio > self.max_ratio
        ):
            raise ValueError(f"min_ratio {self.min_ratio} exceeds max_ratio {self.max_ratio}")
        return self

    @property
    def path(self) -> str:
        return next(iter(self.growth))

    def describe(self) -> str:
        lo = "0" if self.min_ratio is None else f"{self.min_ratio:g}"
        hi = "inf" if self.max_ratio is None else f"{self.max_ratio:g}"
        a, b = self.growth[self.path]
        who = self.policy or "every policy"
        return (
            f"{self.metric}[{self.scope}] grows x[{lo}, {hi}] from {self.path}={a} to {b} "
            f"for {who}{_at_text(self.at)}"
        )


class BaselineExpectation(_Strict):
    """Every row of a stored ``summary.csv`` still holds.

    A row holds when its new confidence interval overlaps the stored one, or
    the means differ by at most ``rel`` of the stored mean. ``baseline`` is
    resolved against the experiment file's folder; ``metrics`` restricts the
    rows compared (default: all in the file).
    """

    baseline: str
    metrics: list[str] | None = None
    rel: float = Field(0.0, ge=0.0)

    def describe(self) -> str:
        which = ", ".join(self.metrics) if self.metrics else "all metrics"
        return f"baseline {self.baseline} ({which}, rel {self.rel:g})"


_KIND_MARKERS = {"baseline": "baseline-csv", "better": "better-than", "than": "better-than",
                 "growth": "growth", "value": "within",
                 "min": "bounds", "max": "bounds"}  # fmt: skip
"""A key that only one kind of expectation has, and that kind's tag, in priority order.
Tags are spelled so they can never be a YAML key: they appear in pydantic error locations."""


def _expectation_kind(data: Any) -> str | None:
    """Tell the kinds apart by their characteristic keys, so an error names one kind."""
    if isinstance(data, BaseModel):
        keys = set(type(data).model_fields)
    elif isinstance(data, dict):
        keys = set(data)
    else:
        return None
    return next((kind for key, kind in _KIND_MARKERS.items() if key in keys), None)


Expectation = Annotated[
    Annotated[BetterExpectation, Tag("better-than")]
    | Annotated[BoundsExpectation, Tag("bounds")]
    | Annotated[WithinExpectation, Tag("within")]
    | Annotated[GrowthExpectation, Tag("growth")]
    | Annotated[BaselineExpectation, Tag("baseline-csv")],
    Discriminator(
        _expectation_kind,
        custom_error_type="expectation_kind",
        custom_error_message=(
            "an expectation needs better/than, min/max, value (with rel or abs), growth or baseline"
        ),
    ),
]
"""One entry of ``expect:``; use ``list[Expectation]`` as a pydantic field type."""


def check_expectations(expectations: list[Any], policies: list[str]) -> None:
    """Raise a :class:`FieldError` at the first policy or metric name that no run will have.

    An unknown name would only surface after every run, as a broken expectation.
    """
    for index, exp in enumerate(expectations):
        for field in ("better", "than", "policy"):
            name = getattr(exp, field, None)
            if name is not None and name not in policies:
                raise FieldError(
                    f"unknown policy {name!r}; policies: {', '.join(policies)}"
                    f"{_did_you_mean(name, policies)}",
                    "expect",
                    index,
                    field,
                )
        names: list[tuple[tuple[str | int, ...], str]] = (
            [(("metric",), exp.metric)] if hasattr(exp, "metric") else []
        )
        names += [(("metrics", i), m) for i, m in enumerate(getattr(exp, "metrics", None) or [])]
        for at, metric in names:
            _known_metric(metric, "expect", index, *at)


def _known_metric(metric: str, *at: str | int) -> None:
    if metric not in _DIRECTION:
        known = sorted(_DIRECTION)
        raise FieldError(
            f"unknown metric {metric!r}; metrics: {', '.join(known)}{_did_you_mean(metric, known)}",
            *at,
        )


def _did_you_mean(word: str, choices: list[str]) -> str:
    import difflib

    matches = difflib.get_close_matches(word, choices, n=1)
    return f" (did you mean {matches[0]!r}?)" if matches else ""
