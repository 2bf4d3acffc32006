"""Probability distributions of the YAML language, and fast samplers for them.

Each distribution is a pydantic model tagged by ``dist``; :func:`sampler`
turns one into a :class:`Sampler` that draws from a numpy ``Generator`` in
blocks. Drawing a block at a time keeps the per-sample cost on the hot path to
a list index instead of a numpy call (a numpy scalar draw costs ~1 µs), while
the sequence stays a pure function of the generator's seed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from itertools import chain, repeat
from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from kossim.datafiles import DataFileError, read_values
from kossim.errors import FieldError

__all__ = [
    "Constant",
    "Distribution",
    "Empirical",
    "Erlang",
    "Exponential",
    "Gamma",
    "Hyperexponential",
    "Lognormal",
    "Normal",
    "Sampler",
    "Uniform",
    "draws",
    "sampler",
]

BLOCK = 1024
_LOG_FLOAT_MAX = math.log(np.finfo(float).max)


class _Dist(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    def mean_value(self) -> float:
        """The distribution's mean (used for network shortest paths and load checks)."""
        raise NotImplementedError

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` independent samples."""
        raise NotImplementedError


class Constant(_Dist):
    dist: Literal["constant"]
    value: float = Field(ge=0)

    def mean_value(self) -> float:
        return self.value

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.full(n, self.value)


class Exponential(_Dist):
    dist: Literal["exponential"]
    mean: float = Field(gt=0)

    def mean_value(self) -> float:
        return self.mean

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.exponential(self.mean, n)


class Uniform(_Dist):
    dist: Literal["uniform"]
    low: float = Field(ge=0)
    high: float = Field(ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> Uniform:
        if self.high < self.low:
            raise FieldError(f"must be >= low ({self.low:g})", "high", got=self.high)
        return self

    def mean_value(self) -> float:
        return (self.low + self.high) / 2

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.uniform(self.low, self.high, n)


class Normal(_Dist):
    """Normal truncated at 0: negative draws are redrawn (a conditional, not a clip)."""

    dist: Literal["normal"]
    mean: float = Field(gt=0)
    sd: float = Field(ge=0)

    def mean_value(self) -> float:
        # Mean of the truncated normal; close to ``mean`` when mean >> sd.
        if self.sd == 0:
            return self.mean
        from scipy.stats import truncnorm

        a = -self.mean / self.sd
        return float(truncnorm.mean(a, math.inf, loc=self.mean, scale=self.sd))

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        out = rng.normal(self.mean, self.sd, n)
        bad = out < 0
        while bad.any():
            out[bad] = rng.normal(self.mean, self.sd, int(bad.sum()))
            bad = out < 0
        return out


class Lognormal(_Dist):
    dist: Literal["lognormal"]
    mean: float = Field(gt=0)
    scv: float = Field(gt=0, description="squared coefficient of variation")

    def mean_value(self) -> float:
        return self.mean

    @model_validator(mode="after")
    def _representable(self) -> Lognormal:
        sigma2 = math.log1p(self.scv)
        # ten standard deviations above the log-mean must stay below the largest float
        if math.log(self.mean) - sigma2 / 2 + 10 * math.sqrt(sigma2) >= _LOG_FLOAT_MAX:
            raise ValueError("mean and scv this large make draws overflow a float")
        return self

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        sigma2 = math.log1p(self.scv)
        return rng.lognormal(math.log(self.mean) - sigma2 / 2, math.sqrt(sigma2), n)


class Gamma(_Dist):
    dist: Literal["gamma"]
    mean: float = Field(gt=0)
    scv: float = Field(gt=0, description="squared coefficient of variation")

    def mean_value(self) -> float:
        return self.mean

    @model_validator(mode="after")
    def _representable(self) -> Gamma:
        if not math.isfinite(self.mean * self.scv):
            raise ValueError("mean x scv overflows a float: the draws would be infinite")
        return self

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.gamma(1 / self.scv, self.mean * self.scv, n)


class Hyperexponential(_Dist):
    """Two-phase hyperexponential with balanced means (scv >= 1)."""

    dist: Literal["hyperexponential"]
    mean: float = Field(gt=0)
    scv: float = Field(ge=1, description="squared coefficient of variation, >= 1")

    @model_validator(mode="after")
    def _representable(self) -> Hyperexponential:
        p = self._p()
        if p >= 1 or not math.isfinite(self.mean / (2 * (1 - p))):
            raise ValueError(
                "scv is too large for the mean: the slow phase's mean overflows a float"
            )
        return self

    def _p(self) -> float:
        return 0.5 * (1 + math.sqrt((self.scv - 1) / (self.scv + 1)))

    def mean_value(self) -> float:
        return self.mean

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        p = self._p()
        m1, m2 = self.mean / (2 * p), self.mean / (2 * (1 - p))
        pick = rng.random(n) < p
        return np.where(pick, rng.exponential(m1, n), rng.exponential(m2, n))


class Erlang(_Dist):
    dist: Literal["erlang"]
    mean: float = Field(gt=0)
    k: int = Field(ge=1)

    def mean_value(self) -> float:
        return self.mean

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.gamma(self.k, self.mean / self.k, n)


class Empirical(_Dist):
    """Resamples (with replacement) from listed values or a CSV column of a file.

    The file holds one column of numbers, optionally under a header row; in a
    wider file ``column`` names the column by its header.
    """

    dist: Literal["empirical"]
    values: list[Annotated[float, Field(ge=0)]] | None = None
    file: str | None = None
    column: str | None = Field(default=None, description="header of the column in a wider file")

    @model_validator(mode="after")
    def _one_source(self) -> Empirical:
        if (self.values is None) == (self.file is None):
            raise ValueError("give exactly one of 'values' or 'file'")
        if self.column is not None and self.file is None:
            raise FieldError("'column' picks a column of 'file'", "column")
        if self.file is not None:
            try:
                values = read_values(self.file, self.column)
            except DataFileError as exc:
                raise FieldError(str(exc), "file") from None
            object.__setattr__(self, "values", values)
            object.__setattr__(self, "file", None)
            object.__setattr__(self, "column", None)
        if not self.values:
            raise ValueError("empirical needs at least one value")
        return self

    def mean_value(self) -> float:
        assert self.values is not None
        return float(np.mean(self.values))

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.choice(np.asarray(self.values, dtype=float), n)


Distribution = Annotated[
    Constant
    | Exponential
    | Uniform
    | Normal
    | Lognormal
    | Gamma
    | Hyperexponential
    | Erlang
    | Empirical,
    Field(discriminator="dist"),
]


class Sampler:
    """Draws one value at a time from blocks of ``BLOCK`` samples."""

    __slots__ = ("_buf", "_dist", "_i", "_rng")

    def __init__(self, dist: _Dist, rng: np.random.Generator) -> None:
        self._dist = dist
        self._rng = rng
        self._buf: list[float] = []
        self._i = 0

    def __call__(self) -> float:
        i = self._i
        buf = self._buf
        if i == len(buf):
            buf = self._buf = self._dist.draw(self._rng, BLOCK).tolist()
            i = 0
        self._i = i + 1
        return buf[i]


def sampler(dist: _Dist, rng: np.random.Generator) -> Sampler:
    """A block sampler of ``dist`` driven by ``rng``."""
    return Sampler(dist, rng)


def draws(dist: _Dist, rng: np.random.Generator) -> Callable[[], float]:
    """What :func:`sampler` gives (the same values, drawn in the same blocks of ``BLOCK``
    at the same moments: when the first value of a block is asked for), as a callable
    without a Python frame per value: ``next`` on a chain of the blocks' lists. For the
    engine's hot path (an interarrival time and a work size per task)."""
    blocks = map(np.ndarray.tolist, map(dist.draw, repeat(rng), repeat(BLOCK)))
    return partial(next, chain.from_iterable(blocks))


class _Growing(Sampler):
    """A sampler whose blocks start small and double up to ``BLOCK``: a stream drawn a
    few times holds a few numbers, not a full block (same numbers, same order)."""

    __slots__ = ("_n",)

    def __init__(self, dist: _Dist, rng: np.random.Generator) -> None:
        super().__init__(dist, rng)
        self._n = 8

    def __call__(self) -> float:
        i = self._i
        buf = self._buf
        if i == len(buf):
            n = self._n
            self._n = min(2 * n, BLOCK)
            buf = self._buf = self._dist.draw(self._rng, n).tolist()
            i = 0
        self._i = i + 1
        return buf[i]


#: Distributions numpy draws value by value: blocks of any size give the same sequence.
_BY_VALUE = (Constant, Exponential, Uniform, Lognormal, Gamma, Erlang)


def lean_sampler(dist: _Dist, rng: np.random.Generator) -> Sampler:
    """A sampler for one of many streams each drawn rarely (a network link, an agent's
    failure clock): its blocks grow from 8 values to ``BLOCK`` where that gives the same
    numbers as full blocks, so ten thousand such streams hold kilobytes, not megabytes."""
    return _Growing(dist, rng) if isinstance(dist, _BY_VALUE) else Sampler(dist, rng)
