"""The reference model of ``kossim bench``: M/M/c written the way the SimPy docs write it.

One process per customer, a ``simpy.Resource`` for the servers, ``with
request() as req: yield req`` then ``yield env.timeout(service)``: the shape
of SimPy's bank-renege and carwash examples. It is deliberately plain, so
the benchmark compares kossim with what a competent SimPy user would write by
hand, not with a tuned special case. Random numbers come from one
``random.Random`` owned by the run (``expovariate``, as in the docs).
"""

from __future__ import annotations

import random
from collections.abc import Generator
from typing import Any

import simpy

__all__ = ["simulate_mmc"]


def _customer(
    env: simpy.Environment,
    index: int,
    servers: simpy.Resource,
    service: float,
    waits: list[float],
) -> Generator[Any, Any, None]:
    arrive = env.now
    with servers.request() as req:
        yield req
        waits[index] = env.now - arrive
        yield env.timeout(service)


def _source(
    env: simpy.Environment,
    count: int,
    rate: float,
    mean_service: float,
    servers: simpy.Resource,
    rng: random.Random,
    waits: list[float],
) -> Generator[Any, Any, None]:
    for index in range(count):
        yield env.timeout(rng.expovariate(rate))
        env.process(_customer(env, index, servers, rng.expovariate(1.0 / mean_service), waits))


def simulate_mmc(
    servers: int,
    rate: float,
    mean_service: float,
    tasks: int,
    warmup_tasks: int,
    seed: int,
) -> list[float]:
    """Run ``warmup_tasks + tasks`` customers to completion; the measured customers' waits.

    Waits come back in arrival order (customer ``warmup_tasks`` first), so
    batch means over them are batches of consecutive arrivals.
    """
    if servers < 1 or rate <= 0 or mean_service <= 0 or tasks < 1 or warmup_tasks < 0:
        raise ValueError(
            f"bad M/M/c parameters: servers={servers}, rate={rate}, "
            f"mean_service={mean_service}, tasks={tasks}, warmup_tasks={warmup_tasks}"
        )
    count = warmup_tasks + tasks
    env = simpy.Environment()
    resource = simpy.Resource(env, capacity=servers)
    waits = [0.0] * count
    rng = random.Random(seed)
    env.process(_source(env, count, rate, mean_service, resource, rng, waits))
    env.run()
    return waits[warmup_tasks:]
