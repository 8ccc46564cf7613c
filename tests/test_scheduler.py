"""Events placed at arrival time + a fixed delay, at the exact sample, whatever the block."""

import numpy as np
import pytest

from engine.pool import PadLayout, Pools
from instrument.mixer import Mixer, PadMix
from instrument.scheduler import EventQueue, Scheduler

RATE, BLOCK, DELAY = 44100, 128, 0.01


@pytest.fixture
def rig():
    with Pools.create([PadLayout(8, 2, 2000)] * 2) as pools:
        shot = np.full((2, 2000), 0.2, np.float32)
        shot[:, -1] = 0
        for p in range(2):
            for i in range(8):
                pools.preload(p, shot, i, fresh=True)
        mixer = Mixer(pools, [PadMix(1.0, 0.0, release_on_note_off=True)] * 2, RATE, BLOCK)
        table = [-1] * 128
        table[36], table[38] = 0, 1
        queue = EventQueue()
        yield queue, Scheduler(queue, mixer, table, RATE, DELAY, channel=10), mixer


def run(scheduler, mixer, blocks, start_time=1.0):
    out = np.zeros((blocks * BLOCK, 2), np.float32)
    for b in range(blocks):
        scheduler.run_block(start_time + b * BLOCK / RATE, BLOCK)
        mixer.render(out[b * BLOCK:(b + 1) * BLOCK])
    return out


def onsets(signal):
    rising = np.flatnonzero((np.abs(signal[1:]) > 1e-4) & (np.abs(signal[:-1]) <= 1e-4)) + 1
    return list(rising)


def test_each_note_sounds_exactly_its_delay_after_arrival(rig):
    queue, scheduler, mixer = rig
    arrivals = [1.0005, 1.0131, 1.0200, 1.0562]
    for i, t in enumerate(arrivals):
        queue.push(t, 0x99, 36 if i % 2 == 0 else 38, 100)
        queue.push(t + 0.001, 0x89, 36 if i % 2 == 0 else 38, 0)  # release after 1 ms
    out = run(scheduler, mixer, 40)
    expected = [round((t + DELAY - 1.0) * RATE) for t in arrivals]
    assert onsets(out[:, 0]) == expected
    assert scheduler.late == 0


def test_other_channels_junk_and_unmapped_notes(rig):
    queue, scheduler, mixer = rig
    queue.push(1.0, 0x90, 36, 100)       # channel 1: filtered out
    queue.push(1.0, 0xF8, 0, 0)          # clock
    queue.push(1.0, 0xB9, 7, 100)        # a controller
    queue.push(1.0, 0x99, 50, 100)       # unmapped
    run(scheduler, mixer, 10)
    assert mixer.counters.hits == 0 and scheduler.unmapped == 1


def test_note_on_with_velocity_zero_is_a_note_off(rig):
    queue, scheduler, mixer = rig
    queue.push(1.0, 0x99, 38, 100)
    queue.push(1.0 + 0.002, 0x99, 38, 0)
    out = run(scheduler, mixer, 20)
    assert mixer.voices == 0 and np.abs(out[-BLOCK:]).max() == 0


def test_a_late_event_plays_at_once_and_is_counted(rig):
    queue, scheduler, mixer = rig
    queue.push(0.5, 0x99, 36, 100)
    out = run(scheduler, mixer, 2)
    assert abs(out[0, 0]) > 0 and scheduler.late == 1
