"""The PortAudio-style callback and the Recorder, fast: a fake time_info with the stream's
clock, real pools, scheduler and mixer."""

from __future__ import annotations

import time
from types import SimpleNamespace

import numpy as np

from instrument.audio_callback import SAFETY_MARGIN_S, AudioCallback, Recorder
from instrument.mixer import Mixer, PadMix
from instrument.scheduler import EventQueue
from tests.pool_fixtures import fill, pools_of  # noqa: F401 (a fixture)

RATE, BLOCK = 48000, 256
LATENCY = 0.004   # the device's output latency: a block is heard this long after its callback


def run(callback: AudioCallback, blocks: int, first: int = 0, status=None) -> np.ndarray:
    """`blocks` callbacks in a row, as a stream calls them; the output (frames, 2)."""
    out = np.zeros((blocks * BLOCK, 2), np.float32)
    for b in range(first, first + blocks):
        now = b * BLOCK / RATE
        info = SimpleNamespace(currentTime=now, outputBufferDacTime=now + LATENCY)
        callback.callback(out[(b - first) * BLOCK:(b - first + 1) * BLOCK], BLOCK, info, status)
    return out


def click_callback(pools_of, recorder=None) -> AudioCallback:
    pools = pools_of([(4, 2, 64)])
    fill(pools, 0, value_of=lambda s: 0.5)
    note_to_pad = [-1] * 128
    note_to_pad[36] = 0
    return AudioCallback(Mixer(pools, [PadMix(1.0, 0.0)], RATE, BLOCK), EventQueue(), note_to_pad, RATE,
                         recorder=recorder)


def test_a_note_sounds_a_fixed_delay_after_it_arrived_at_its_exact_sample(pools_of):
    callback = click_callback(pools_of)
    run(callback, 1)                                   # the first callback fixes the delay
    delay = LATENCY + BLOCK / RATE + SAFETY_MARGIN_S
    assert abs(callback.scheduler.delay - delay) < 1e-12
    arrivals = [3 * BLOCK / RATE + 0.0011, 5 * BLOCK / RATE + 0.0002]   # mid-block, between callbacks
    for arrival in arrivals:
        callback.scheduler.queue.push(arrival, 0x99, 36, 127)
    out = run(callback, 12, first=1)
    onsets = [1 * BLOCK + int(i) for i in np.flatnonzero(np.diff((np.abs(out[:, 0]) > 0).astype(int)) == 1) + 1]
    # heard at arrival + delay: the block whose sound starts at t = b/RATE + LATENCY
    expected = [round((arrival + delay - LATENCY) * RATE) for arrival in arrivals]
    assert onsets == expected
    assert callback.stats().hits == 2 and callback.stats().late == 0


def test_a_note_that_comes_too_late_for_its_slot_plays_at_once_and_is_counted(pools_of):
    callback = click_callback(pools_of)
    run(callback, 4)
    callback.scheduler.queue.push(0.0, 0x99, 36, 127)   # arrived long before the stream's now
    out = run(callback, 1, first=4)
    assert np.abs(out[0, 0]) > 0 and callback.stats().late == 1


def test_xruns_and_callbacks_are_counted(pools_of):
    callback = click_callback(pools_of)
    run(callback, 3)
    run(callback, 2, first=3, status="output underflow")
    stats = callback.stats()
    assert (stats.callbacks, stats.xruns) == (5, 2) and stats.budget_ms == BLOCK / RATE * 1000


def test_callbacks_that_take_longer_than_their_block_are_counted_with_the_longest(pools_of):
    """The callback's own overruns, apart from the xruns the audio system reports: a render
    timed from a start one second back took longer than its 5.3 ms block; one timed from a
    start still to come took no time."""
    callback = click_callback(pools_of)
    block = np.zeros((BLOCK, 2), np.float32)
    for started_ago in (-10.0, 1.0, -10.0, 1.0, -10.0):
        callback.render(block, time.perf_counter() - started_ago)
    stats = callback.stats()
    assert (stats.callbacks, stats.overruns, stats.xruns) == (5, 2, 0)
    assert stats.longest_ms >= 1000.0


def test_the_recorder_keeps_every_block_in_order_across_its_ring(pools_of):
    recorder = Recorder(seconds=3 * BLOCK / RATE, sample_rate=RATE)    # a ring of three blocks
    callback = click_callback(pools_of, recorder)
    taken = []
    for b in range(0, 20, 2):
        callback.scheduler.queue.push(b * BLOCK / RATE, 0x99, 36, 40 + b)
        taken.append(run(callback, 2, first=b))
        assert np.array_equal(recorder.take(), taken[-1])            # two blocks fit: nothing lost
    assert recorder.dropped == 0 and recorder.written == 20 * BLOCK


def test_a_recorder_whose_writer_falls_behind_drops_whole_blocks_and_counts_them(pools_of):
    recorder = Recorder(seconds=3 * BLOCK / RATE, sample_rate=RATE)
    callback = click_callback(pools_of, recorder)
    out = run(callback, 5)
    assert recorder.dropped == 2 * BLOCK                               # blocks 4 and 5 had no room
    assert np.array_equal(recorder.take(), out[: 3 * BLOCK])
    run(callback, 1, first=5)
    assert recorder.take().shape == (BLOCK, 2)                          # room again after the take
