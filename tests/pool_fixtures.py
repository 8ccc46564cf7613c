"""Fixtures and helpers for the pool, cache and generator tests (kept out of conftest.py).
Tiny models come from conftest.py's `kit_model_file`."""

from __future__ import annotations

import time

import numpy as np
import pytest

from engine.pool import PadLayout, Pools

@pytest.fixture
def pools_of():
    """pools_of(layout) -> Pools, closed and unlinked after the test."""
    made = []

    def create(layout) -> Pools:
        pools = Pools.create([PadLayout(*pad) for pad in layout])
        made.append(pools)
        return pools

    yield create
    for pools in made:
        pools.close()


@pytest.fixture
def pools_for():
    """pools_for(specs) -> Pools laid out for those pad specs, closed and unlinked after the test."""
    from engine.plan import pool_layout

    made = []

    def create(specs) -> Pools:
        made.append(Pools.create(pool_layout(specs)))
        return made[-1]

    yield create
    for pools in made:
        pools.close()


def fill(pools: Pools, p: int, value_of=lambda s: float(s + 1)) -> list[int]:
    """As the producer: publish every slot it owns, each a constant signal; the slots filled."""
    slots = [int(s) for s in pools.owned_slots(p)]
    channels, frames = pools.audio[p].shape[1:]
    for s in slots:
        pools.publish(p, s, np.full((channels, frames), value_of(s), np.float32), seed=1000 + s)
    return slots


def refill(pools: Pools, producer) -> None:
    """The generator's loop, with the audio callback's part (lending played slots) between."""
    for _ in range(20):
        batch = producer.plan()
        if batch:
            producer.make(batch)
        producer.deliver(quiet=0.0)
        pools.service()
        producer.deliver(quiet=0.0)
        if not batch and not any(producer.pending):
            return


def wait_serving(pools: Pools, condition, timeout: float) -> bool:
    """Poll `condition()` as the audio thread would: servicing the pools meanwhile."""
    deadline = time.monotonic() + timeout
    while True:
        pools.service()
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.002)


def hammer_producer(handle, report) -> None:
    """A producer process that refills as fast as the protocol lets it, until report[2] is
    set. Every one-shot is a constant signal of a value never used before; it counts any slot
    it owns that a voice plays. report: a shared array [one-shots written, violations, stop]."""
    pools = Pools.attach(handle)
    value = 1.0
    try:
        while not report[2]:
            for p in range(pools.pads):
                owned = pools.owned_slots(p)
                channels, frames = pools.audio[p].shape[1:]
                for s in owned:
                    if pools.voices[p, s] != 0:
                        report[1] += 1
                    pools.publish(p, int(s), np.full((channels, frames), value, np.float32), int(value))
                    value += 1.0
                    report[0] += 1
                pools.request_slots(p, 2)
    finally:
        pools.close()
