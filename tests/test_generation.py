"""Samplers, variation, guidance, batching and post-processing on tiny real models."""

import numpy as np
import pytest
import torch

from engine.errors import InputError
from engine.sample_batch import Item, generate, sample_batch
from engine.modelfile import load_model
from engine.postprocess import Finish, finish_oneshot, tail_gate
from engine.settings import Settings


@pytest.fixture(scope="module")
def plain(plain_model_file):
    return load_model(plain_model_file)


@pytest.fixture(scope="module")
def kit(kit_model_file):
    return load_model(kit_model_file)


def rms(a, b):
    return float(np.sqrt(np.mean((a - b) ** 2)))


def test_own_ddim_matches_the_library_vsampler_step_for_step(plain):
    items = [Item(3), Item(4)]
    ours = sample_batch(plain, items, Settings(sampler="ddim", schedule="linear", steps=8))
    library = sample_batch(plain, items, Settings(sampler="vsampler", steps=8))
    np.testing.assert_allclose(ours, library, atol=1e-5)


def test_dpm_solver_reaches_the_converged_result_in_far_fewer_steps(plain):
    items = [Item(5), Item(6)]
    reference = sample_batch(plain, items, Settings(sampler="dpmpp_2m", steps=200))
    dpm_10 = rms(sample_batch(plain, items, Settings(sampler="dpmpp_2m", steps=10)), reference)
    vsampler_10 = rms(sample_batch(plain, items, Settings(sampler="vsampler", steps=10)), reference)
    vsampler_50 = rms(sample_batch(plain, items, Settings(sampler="vsampler", steps=50)), reference)
    assert dpm_10 < vsampler_10 / 4
    assert dpm_10 < vsampler_50


def test_same_seed_same_one_shot_on_every_batch_size(kit):
    settings = Settings(steps=4)
    batch = sample_batch(kit, [Item(s, class_index=s % 3) for s in range(10, 15)], settings)
    for i, seed in enumerate(range(10, 15)):
        alone = sample_batch(kit, [Item(seed, class_index=seed % 3)], settings)[0]
        np.testing.assert_allclose(batch[i], alone, atol=1e-5)
    again = sample_batch(kit, [Item(12, class_index=2)], settings)[0]
    assert np.array_equal(again, sample_batch(kit, [Item(12, class_index=2)], settings)[0])
    assert rms(batch[0], batch[1]) > 0.01


def test_variation_strength_moves_from_the_source_to_free_generation(plain):
    source = sample_batch(plain, [Item(99)], Settings(steps=6))[0]
    distance = {}
    for strength in (0.0, 0.3, 0.7):
        out = sample_batch(plain, [Item(1, source=source)], Settings(steps=6, strength=strength))[0]
        distance[strength] = rms(out, source)
    assert distance[0.0] == 0.0
    assert distance[0.3] < distance[0.7]
    free = sample_batch(plain, [Item(1)], Settings(steps=6))[0]
    full = sample_batch(plain, [Item(1, source=source)], Settings(steps=6, strength=1.0))[0]
    np.testing.assert_allclose(full, free, atol=1e-6)


def test_classes_and_guidance_shape_the_output(kit):
    def one(class_index, guidance):
        return sample_batch(kit, [Item(7, class_index=class_index)], Settings(steps=4, guidance=guidance))[0]

    # random weights barely listen to the class; anything above float noise (~1e-7) is the class
    assert rms(one(0, 1.0), one(1, 1.0)) > 1e-5
    assert rms(one(0, 2.0), one(0, 2.0)) == 0.0


def test_guidance_extrapolates_from_the_unconditional_prediction(kit):
    x = torch.randn(2, 2, 1024, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([0.5, 0.5])
    classes = torch.tensor([0, 2])
    with torch.no_grad():
        v = {g: kit.velocity(x, t, **kit.conditioning(classes, g)) for g in (1.0, 2.0, 4.0)}
    step = (v[2.0] - v[1.0]).abs().max()
    assert step > 0
    torch.testing.assert_close(v[4.0] - v[1.0], 3 * (v[2.0] - v[1.0]), atol=1e-5, rtol=1e-3)
    assert kit.class_index("snare") == 1
    with pytest.raises(InputError, match="unknown class 'cowbell'"):
        kit.class_index("cowbell")


@pytest.mark.parametrize("bad, message", [
    (dict(sampler="euler"), "unknown sampler"),
    (dict(strength=1.5), r"strength must lie in \[0, 1\]"),
    (dict(steps=0), "steps must be"),
    (dict(guidance=float("nan")), "guidance"),
])
def test_bad_settings_are_refused(plain, bad, message):
    with pytest.raises(InputError, match=message):
        sample_batch(plain, [Item(1)], Settings(**bad))


def test_generated_one_shots_are_finished(kit):
    shots = generate(kit, [Item(s, class_index=0) for s in range(3)], Settings(steps=3))
    for shot in shots:
        assert shot.dtype == np.float32 and shot.shape == (2, 1024)
        assert np.isclose(np.abs(shot).max(), 10 ** (-1 / 20), atol=1e-6)
        assert np.all(shot[:, -1] == 0) and np.all(shot[:, 0] == 0)


def test_finish_rejects_nan_and_silence_and_removes_dc():
    rate = 44100
    t = np.arange(8192) / rate
    decaying = (np.sin(2 * np.pi * 200 * t) * np.exp(-t * 30))[None].repeat(2, 0)
    assert finish_oneshot(np.where(t < 0.1, np.nan, decaying), rate) is None
    assert finish_oneshot(np.full((2, 8192), 1e-6), rate) is None
    assert finish_oneshot(np.full((2, 8192), 0.3), rate) is None  # pure DC is silence once DC is removed
    shot = finish_oneshot(decaying + 0.4, rate, Finish(peak_db=-6.0))
    assert abs(shot.mean()) < 0.02
    assert np.isclose(np.abs(shot).max(), 10 ** (-6 / 20), atol=1e-6)
    tail = shot[:, -int(0.01 * rate):]
    assert np.all(np.abs(np.diff(tail, axis=-1)) < 1e-3) and np.all(shot[:, -1] == 0)


RATE = 44100


def drum_hit(seconds: float = 0.75, decay_db_per_s: float = 80.0, seed: int = 0) -> np.ndarray:
    """Stereo noise decaying exponentially, as a real one-shot does, from a peak near 0.9."""
    t = np.arange(int(seconds * RATE)) / RATE
    noise = np.random.default_rng(seed).standard_normal((2, len(t)))
    return 0.3 * noise * 10 ** (-decay_db_per_s * t / 20)


def level_db(audio: np.ndarray, start_s: float, stop_s: float) -> float:
    """Power between two times, in dB under the first 10 ms (the hit's peak)."""
    part = audio[:, int(start_s * RATE):int(stop_s * RATE)]
    return 10 * np.log10(np.mean(part ** 2) / np.mean(audio[:, :int(0.01 * RATE)] ** 2))


def test_tail_gate_leaves_a_decaying_one_shot_alone():
    for rate_db in (60.0, 100.0, 200.0):
        hit = drum_hit(decay_db_per_s=rate_db)
        assert np.array_equal(tail_gate(hit, RATE), hit)


def hiss(floor_db: float, seed: int = 1) -> np.ndarray:
    return 10 ** (floor_db / 20) * 0.3 * np.random.default_rng(seed).standard_normal((2, int(0.75 * RATE)))


def test_tail_gate_fades_the_hiss_a_decay_stalls_on_and_pulls_a_swell_back_down():
    swell = np.zeros((2, int(0.75 * RATE)))
    swell[:, int(0.6 * RATE):int(0.65 * RATE)] = 0.1 * np.random.default_rng(2).standard_normal((2, int(0.05 * RATE)))
    hissing = drum_hit() + hiss(-40) + swell
    gated = tail_gate(hissing, RATE)
    np.testing.assert_allclose(gated[:, :int(0.3 * RATE)], hissing[:, :int(0.3 * RATE)], atol=1e-6)
    taken = [level_db(hissing, t, t + 0.05) - level_db(gated, t, t + 0.05) for t in np.arange(0.3, 0.6, 0.05)]
    assert taken[0] < 0.1 and all(b > a - 0.5 for a, b in zip(taken, taken[1:]))   # it only ever takes more
    assert level_db(gated, 0.55, 0.6) < level_db(hissing, 0.55, 0.6) - 2   # at 40 dB/s or faster
    assert level_db(hissing, 0.6, 0.65) > level_db(hissing, 0.5, 0.55) + 20
    assert level_db(gated, 0.6, 0.65) < level_db(hissing, 0.6, 0.65) - 20  # the swell pulled back down
    assert level_db(gated, 0.65, 0.7) < level_db(gated, 0.55, 0.6) - 20    # and what follows stays down


def test_tail_gate_fades_hiss_above_a_body_that_still_sounds():
    t = np.arange(int(0.75 * RATE)) / RATE
    kick = 0.9 * np.sin(2 * np.pi * 60 * t) * 10 ** (-30 * t / 20)        # still sounding at 0.5 s
    kick += 0.5 * np.random.default_rng(3).standard_normal(len(t)) * np.exp(-t / 0.004)   # the beater's click
    hissing = kick[None].repeat(2, 0) + hiss(-45)
    gated = tail_gate(hissing, RATE)

    def band_db(audio, low, high, start, stop):
        frames = audio[:, int(start * RATE):int(stop * RATE)]
        part, f = np.fft.rfft(frames, axis=-1), np.fft.rfftfreq(frames.shape[-1], 1 / RATE)
        return 10 * np.log10(np.sum(np.abs(part[:, (f >= low) & (f < high)]) ** 2))

    assert abs(band_db(gated, 30, 120, 0.0, 0.5) - band_db(hissing, 30, 120, 0.0, 0.5)) < 0.1   # the body stays
    assert band_db(gated, 8000, 22000, 0.4, 0.6) < band_db(hissing, 8000, 22000, 0.4, 0.6) - 10  # the hiss goes


def test_finish_gates_the_tail_unless_told_not_to():
    hissing = drum_hit() + hiss(-40)
    gated, plain_finish = finish_oneshot(hissing, RATE), finish_oneshot(hissing, RATE, Finish(tail_gate=False))
    assert level_db(gated, 0.65, 0.7) < level_db(plain_finish, 0.65, 0.7) - 6
    assert abs(level_db(gated, 0.0, 0.1) - level_db(plain_finish, 0.0, 0.1)) < 0.01


def test_data_scale_maps_the_nets_range_back_to_audio(plain):
    """A model trained on audio times s makes audio times s: generation divides it out, and a
    variation source is scaled up before it is noised, so the net sees what it was trained on."""
    from dataclasses import replace

    from engine.modelfile import DrumDiffusion

    scaled = DrumDiffusion(replace(plain.config, data_scale=4.0)).eval()
    scaled.load_state_dict(plain.state_dict())
    settings = Settings(steps=4)
    np.testing.assert_allclose(sample_batch(plain, [Item(1)], settings),
                               4.0 * sample_batch(scaled, [Item(1)], settings), rtol=1e-5, atol=1e-6)
    source = sample_batch(plain, [Item(2)], settings)[0]
    variation = replace(settings, strength=0.5)
    np.testing.assert_allclose(sample_batch(plain, [Item(3, source=4.0 * source)], variation),
                               4.0 * sample_batch(scaled, [Item(3, source=source)], variation), rtol=1e-4, atol=1e-5)
