"""Voices and mixer on real shared-memory pools: timing, gains, chokes, stealing, safety."""

import numpy as np
import pytest

from engine.pool import PadLayout, Pools
from instrument.mixer import FADE_MS, Mixer, PadMix

RATE = 44100
BLOCK = 128
FRAMES = 4000


def tone(level=0.5, frames=FRAMES):
    """A one-shot that ends at zero, like the engine's."""
    t = np.arange(frames)
    env = np.minimum(1.0, (frames - 1 - t) / 200.0)
    shot = (level * env * np.sin(2 * np.pi * 441 * t / RATE)).astype(np.float32)
    return np.stack([shot, shot])


def dc_shot(level=0.5, frames=FRAMES):
    """Constant level, so gains and envelopes can be read straight off the output."""
    shot = np.full((2, frames), level, np.float32)
    shot[:, -1] = 0.0
    return shot


@pytest.fixture
def pools():
    with Pools.create([PadLayout(4, 2, FRAMES)] * 3) as pools:
        yield pools


def fill(pools, pad, shots):
    for i, shot in enumerate(shots):
        assert pools.preload(pad, shot, seed=i, fresh=True)


def run(mixer, blocks):
    out = np.zeros((blocks * BLOCK, 2), np.float32)
    for b in range(blocks):
        mixer.render(out[b * BLOCK:(b + 1) * BLOCK])
    return out


def play(mixer, events, blocks):
    """events: (absolute frame, kind, pad, velocity); applied in the block they fall in."""
    out = np.zeros((blocks * BLOCK, 2), np.float32)
    for b in range(blocks):
        for frame, kind, pad, velocity in events:
            if b * BLOCK <= frame < (b + 1) * BLOCK:
                (mixer.note_on(pad, velocity, frame - b * BLOCK) if kind == "on" else mixer.note_off(pad, frame - b * BLOCK))
        mixer.render(out[b * BLOCK:(b + 1) * BLOCK])
    return out


def mixer_for(pools, *pads, **kwargs):
    return Mixer(pools, list(pads), RATE, BLOCK, **kwargs)


def test_a_hit_starts_at_its_exact_sample_offset(pools):
    fill(pools, 0, [dc_shot()])
    mixer = mixer_for(pools, PadMix(gain=1.0, pan=0.0))
    out = play(mixer, [(BLOCK + 37, "on", 0, 127)], 4)
    first = np.flatnonzero(np.abs(out[:, 0]) > 0)[0]
    assert first == BLOCK + 37


def test_velocity_pan_and_gain(pools):
    fill(pools, 0, [dc_shot(0.5)] * 2)
    mixer = mixer_for(pools, PadMix(gain=0.5, pan=0.5, velocity_curve="linear"))
    mixer.note_on(0, 127)
    out = run(mixer, 1)
    assert np.allclose(out[10], [0.5 * 0.5 * 0.5, 0.5 * 0.5])  # left attenuated by the pan
    mixer.note_on(0, 64)
    out = run(mixer, 1)
    assert np.isclose(out[10, 1], 0.5 * 0.5 * 64 / 127 + 0.5 * 0.5, atol=1e-6)


def test_voice_ends_and_releases_its_slot(pools):
    fill(pools, 0, [dc_shot(frames=300)])
    mixer = mixer_for(pools, PadMix(gain=1.0, pan=0.0))
    mixer.note_on(0, 100)
    assert pools.voices[0].sum() == 1
    run(mixer, 3)
    assert mixer.voices == 0 and pools.voices[0].sum() == 0


def test_choke_group_fades_the_other_pad_out_in_a_few_ms_without_a_jump(pools):
    fill(pools, 0, [dc_shot(0.4)] * 2)   # open hat
    fill(pools, 1, [dc_shot(0.3)] * 2)   # closed hat
    mixer = mixer_for(pools, PadMix(1.0, 0.0, choke=0), PadMix(1.0, 0.0, choke=0))
    out = play(mixer, [(0, "on", 0, 127), (300, "on", 1, 127)], 6)
    left = out[:, 0]
    fade = int(FADE_MS * RATE / 1000)
    assert np.isclose(left[299], 0.4) and np.isclose(left[300 + fade + 5], 0.3, atol=1e-6)
    open_hat = left - 0.3 * (np.arange(len(left)) >= 300)
    assert np.max(np.abs(np.diff(open_hat[290:300 + fade + 10]))) < 0.4 / fade * 2  # smooth, no step
    assert mixer.voices == 1


def test_note_off_is_ignored_unless_the_pad_releases_on_it(pools):
    fill(pools, 0, [dc_shot(0.3)] * 2)
    fill(pools, 1, [dc_shot(0.2)] * 2)
    mixer = mixer_for(pools, PadMix(1.0, 0.0), PadMix(1.0, 0.0, release_on_note_off=True))
    out = play(mixer, [(0, "on", 0, 127), (0, "on", 1, 127), (200, "off", 0, 0), (200, "off", 1, 0)], 6)
    assert np.isclose(out[150, 0], 0.5, atol=1e-6)
    assert np.isclose(out[700, 0], 0.3, atol=1e-6)  # only pad 0 still sounds


def test_polyphony_cap_steals_the_oldest_with_a_fade(pools):
    fill(pools, 0, [dc_shot(0.01)] * 4)
    mixer = mixer_for(pools, PadMix(1.0, 0.0), max_voices=3)
    out = play(mixer, [(i * 10, "on", 0, 127) for i in range(5)], 8)
    assert mixer.counters.steals == 2
    assert mixer.voices <= 3
    assert np.max(np.abs(np.diff(out[:, 0]))) <= 0.01 + 1e-6  # each change is at most one voice starting


def test_empty_pool_plays_nothing_and_counts(pools):
    mixer = mixer_for(pools, PadMix(1.0, 0.0))
    assert not mixer.note_on(0, 100)
    assert mixer.counters.empty == 1 and not run(mixer, 1).any()


def test_output_is_always_finite_and_within_range(pools):
    loud = dc_shot(0.9)
    bad = tone(0.5)
    bad[:, 100:110] = np.nan
    bad[:, 200] = np.inf
    fill(pools, 0, [loud] * 4)
    fill(pools, 1, [bad])
    mixer = mixer_for(pools, PadMix(4.0, 0.0), PadMix(1.0, 0.0))
    out = play(mixer, [(i, "on", 0, 127) for i in range(4)] + [(0, "on", 1, 127)], 10)
    assert np.all(np.isfinite(out)) and np.max(np.abs(out)) <= 1.0
    assert mixer.counters.limited_blocks > 0


def test_replayed_slot_is_protected_while_it_plays(pools):
    fill(pools, 0, [dc_shot(0.1)] * 4)
    mixer = mixer_for(pools, PadMix(1.0, 0.0))
    mixer.note_on(0, 100)
    playing = int(mixer.slot[np.flatnonzero(mixer.active)[0]])
    mixer.note_on(0, 100)
    pools.request_slots(0, 1)   # the generator asks for a played slot back
    run(mixer, 2)
    assert playing not in pools.owned_slots(0)  # still playing: not lent
    run(mixer, 40)
    assert playing in pools.owned_slots(0)      # ended: lent for refilling


def test_pad_outputs_carry_each_pad_alone_and_sum_to_the_mix(pools):
    fill(pools, 0, [dc_shot(0.2)] * 4)
    fill(pools, 1, [dc_shot(0.1)] * 4)
    mixer = Mixer(pools, [PadMix(gain=1.0, pan=0.0), PadMix(gain=0.5, pan=-1.0), PadMix(gain=1.0, pan=0.0)],
                  RATE, max_blocksize=BLOCK)
    out, pads = np.zeros((BLOCK, 2), np.float32), np.zeros((3, BLOCK, 2), np.float32)
    mixer.note_on(0, 127, offset=10)
    mixer.note_on(1, 127, offset=50)
    mixer.render(out, pads)
    assert np.all(pads[0, :10] == 0) and np.allclose(pads[0, 10:], 0.2)
    assert np.all(pads[1, :50] == 0) and np.allclose(pads[1, 50:, 0], 0.05) and np.all(pads[1, :, 1] == 0)
    assert np.all(pads[2] == 0)
    np.testing.assert_allclose(pads.sum(axis=0), out, atol=1e-7)   # below the limiter, they add up


def test_the_decay_knob_fades_the_next_hits_to_silence_and_leaves_playing_ones(pools):
    fill(pools, 0, [dc_shot(0.25)] * 3)
    mixer = mixer_for(pools, PadMix(gain=1.0, pan=0.0))
    mixer.note_on(0, 127)                      # before the knob: plays out
    mixer.set_decay_frames(0, 300)
    mixer.note_on(0, 127)                      # after it: silent 300 frames in
    mixer.set_decay_frames(0, 0)
    out = run(mixer, 4)[:, 0]
    decayed = 0.25 * np.cos(0.5 * np.pi * np.arange(300) / 300) ** 2   # flat at first, then to zero
    assert np.allclose(out[:300], 0.25 + decayed, atol=1e-6)
    assert np.allclose(out[300:512], 0.25) and mixer.voices == 1   # it ended there, with no step


def render_in_blocks(pools, pads, events, frames, blocksize, decay_frames=0):
    """The mix of `events` (absolute frame, kind, pad, velocity) rendered block by block."""
    mixer = Mixer(pools, pads, RATE, max_blocksize=1024)   # blocks may come shorter than the longest
    if decay_frames:
        mixer.set_decay_frames(1, decay_frames)
    out = np.zeros((frames, 2), np.float32)
    for first in range(0, frames, blocksize):
        for frame, kind, pad, velocity in events:
            if first <= frame < first + blocksize:
                (mixer.note_on(pad, velocity, frame - first) if kind == "on" else mixer.note_off(pad, frame - first))
        mixer.render(out[first:first + blocksize])
    return out, mixer


def three_pad_kit():
    """Pools of noise one-shots, one pad mono and shorter; the same each time it is made."""
    rng = np.random.default_rng(3)
    layout = ((2, FRAMES), (1, 3000), (2, FRAMES))
    pools = Pools.create([PadLayout(4, channels, frames) for channels, frames in layout])
    for pad, (channels, frames) in enumerate(layout):
        shots = (rng.standard_normal((4, channels, frames)) * 0.05).astype(np.float32)
        shots[:, :, -1] = 0.0
        fill(pools, pad, shots)
    return pools


def test_a_mix_is_the_same_whatever_the_block_size():
    """Blocks shorter and longer than the mixer's chunk: hits, chokes, note-off fades and the
    decay knob land on the same samples."""
    pads = [PadMix(0.5, -0.3, choke=0), PadMix(0.7, 0.4), PadMix(0.6, 0.0, choke=0, release_on_note_off=True)]
    events = [(5, "on", 0, 100), (70, "on", 1, 90), (300, "on", 2, 127), (900, "on", 0, 60),
              (1100, "off", 2, 0), (1500, "on", 2, 80), (2222, "on", 1, 127), (2600, "off", 2, 0)]
    renders = []
    for size in (64, 128, 512, 1024):
        with three_pad_kit() as pools:
            renders.append(render_in_blocks(pools, pads, events, 8192, size, decay_frames=1800)[0])
    assert np.abs(renders[0]).max() > 0.05
    for out in renders[1:]:
        np.testing.assert_allclose(out, renders[0], atol=1e-6)


def test_a_mono_one_shot_sounds_in_both_channels():
    with Pools.create([PadLayout(2, 1, FRAMES)]) as pools:
        fill(pools, 0, [dc_shot(0.5)[:1]])
        out, _ = render_in_blocks(pools, [PadMix(1.0, 0.0)], [(10, "on", 0, 127)], 1024, BLOCK)
    np.testing.assert_allclose(out[10:1000], 0.5, atol=1e-6)
    assert not out[:10].any()


def test_the_limiter_lets_go_at_the_same_pace_whatever_the_block_size():
    """After a hit loud enough to be limited, a quiet one plays back up at a rate set in
    seconds, not in blocks."""
    events = [(0, "on", 0, 127), (2048, "on", 1, 127)]
    mixes = []
    for size in (64, 256):
        with Pools.create([PadLayout(1, 2, 2000), PadLayout(1, 2, 4 * RATE // 10)]) as pools:
            fill(pools, 0, [dc_shot(0.9, 2000)])
            fill(pools, 1, [dc_shot(0.2, 4 * RATE // 10)])
            mixes.append(render_in_blocks(pools, [PadMix(4.0, 0.0)] * 2, events, 16384, size))
    levels = [out[16384 - 64:, 0].mean() for out, _ in mixes]
    assert all(mixer.counters.limited_blocks > 0 for _, mixer in mixes)
    assert 0.2 < levels[0] < 0.8
    assert levels[1] == pytest.approx(levels[0], rel=0.05)
