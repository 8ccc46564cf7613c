"""The generator, in process and as the supervised process the instrument runs."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest
import torch

from engine.cache import cache_files, load_pools
from engine.sample_batch import Item, generate
from engine.generator_process import PoolFiller
from engine.modelfile import load_model
from engine.pads import PadSpec
from engine.settings import Settings
from engine.plan import GeneratorConfig
from engine.supervisor import GeneratorSupervisor
from tests.pool_fixtures import pools_for, wait_serving  # noqa: F401 (pools_for: a fixture)

FAST = Settings(steps=2)


def kit_specs(model, pool_size=3, **pads):
    """A kick and a snare on one model, or the pads given as name=(class, settings)."""
    pads = pads or {"kick": ("kick", FAST), "snare": ("snare", FAST)}
    return [PadSpec(name, model, cls, pool_size, settings) for name, (cls, settings) in pads.items()]


def config(specs, pools, **options) -> GeneratorConfig:
    return GeneratorConfig(tuple(specs), pools.handle, threads=1, **options)


def supervised(specs, pools, **options) -> GeneratorSupervisor:
    return GeneratorSupervisor(config(specs, pools, **options), check_every=0.05, backoff=0.1)


def full(pools):
    return lambda: all(pools.fresh(p) == pools.sizes[p] for p in range(pools.pads))


def test_process_fills_two_pads_of_one_model_in_shared_batches(kit_model_file, pools_for):
    specs = kit_specs(kit_model_file)
    pools = pools_for(specs)
    with supervised(specs, pools, seed=3):
        assert wait_serving(pools, full(pools), timeout=60)
        stats = pools.stats()
    # a first one-shot for each, then the rest of both pools together
    assert (stats.generated, stats.batches, stats.rejected) == (6, 2, 0)
    assert [int(b) for b in pools.last_batch] == [2, 2]
    assert len({int(s) for s in pools.seed.ravel() if s}) == 6
    for p in range(2):
        assert np.all(pools.frames[p, :3] == 1024)
        assert np.all(np.isfinite(pools.audio[p])) and np.all(np.abs(pools.audio[p]).max(axis=(1, 2)) > 0.5)

    # a hit can be re-made from its slot's seed
    model = load_model(kit_model_file)
    slot = 1
    threads = torch.get_num_threads()
    torch.set_num_threads(1)   # as the generator ran; also, two threads crawl on a busy 2-core box
    try:
        again = generate(model, [Item(int(pools.seed[1, slot]), model.class_index("snare"))], FAST)[0]
    finally:
        torch.set_num_threads(threads)
    np.testing.assert_allclose(pools.audio[1][slot], again, atol=1e-4)


def test_most_urgent_pads_first(kit_model_file, pools_for):
    specs = kit_specs(
        kit_model_file, pool_size=2,
        quiet=("kick", FAST),
        busy=("snare", Settings(steps=2, guidance=1.5)),
        started=("hihat_closed", Settings(steps=2, guidance=3.0)),
        busy_twin=("kick", Settings(steps=2, guidance=1.5)),
    )
    pools = pools_for(specs)
    quiet, busy, started, busy_twin = range(4)
    for _ in range(5):
        pools.take(busy)                 # misses, but the pad is being played
    for _ in range(9):
        pools.take(started)
    pools.preload(started, np.ones((2, 1024), np.float32), seed=1, fresh=True)

    producer = PoolFiller(config(specs, pools, seed=5, max_batch=3), pools)
    order = []
    while batch := producer.plan():
        order.append(batch)
        producer.make(batch)
        producer.deliver(quiet=0.0)
    # empty pools first, one each, the most played of them first, with the pad that can share
    # its batch; then, among pools that hold something, the most played first
    assert order == [[busy, busy_twin], [quiet], [started], [busy, busy_twin], [quiet]]
    assert all(pools.fresh(p) == 2 for p in range(4))


def test_every_pad_gets_a_first_one_shot_before_any_pool_deepens(kit_model_file, pools_for):
    specs = [PadSpec(f"pad{i}", kit_model_file, "kick", 3, FAST) for i in range(6)]
    pools = pools_for(specs)
    producer = PoolFiller(config(specs, pools, seed=2), pools)   # on the CPU: batches of 4
    order = []
    while batch := producer.plan():
        order.append(batch)
        producer.make(batch)
        producer.deliver(quiet=0.0)
    assert order == [[0, 1, 2, 3], [4, 5], [0, 1, 2, 3], [4, 5, 4, 5], [0, 1, 2, 3]]
    assert all(pools.fresh(p) == 3 for p in range(6))


def test_one_shots_go_to_the_pads_being_played_in_proportion(kit_model_file, pools_for):
    specs = [PadSpec(name, kit_model_file, "kick", 8, FAST) for name in ("hat", "snare", "unplayed")]
    pools = pools_for(specs)
    hat, snare, unplayed = range(3)
    for p in range(3):   # each has something to play, already heard (the starter pool)
        pools.preload(p, np.ones((2, 1024), np.float32), seed=p, fresh=False)
    for p, hits in ((hat, 30), (snare, 10)):
        for _ in range(hits):
            pools.take(p)

    producer = PoolFiller(config(specs, pools, seed=3, max_batch=8), pools)
    order = []
    while batch := producer.plan():
        order.append(batch)
        producer.make(batch)
        producer.deliver(quiet=0.0)
    first = order[0]
    assert unplayed not in first and first.count(hat) > first.count(snare) > 0   # three times the hits, more of them
    assert order[0] + order[1] == sorted(order[0] + order[1], key=lambda p: p == unplayed)   # the unplayed pad last
    assert all(pools.fresh(p) == 7 for p in range(3))   # the slot last played stays the player's


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="SCHED_IDLE is Linux's")
def test_the_generator_process_runs_only_when_the_cpu_is_idle(kit_model_file, pools_for):
    specs = kit_specs(kit_model_file)
    pools = pools_for(specs)
    with supervised(specs, pools, seed=4) as supervisor:
        assert wait_serving(pools, full(pools), timeout=60)
        assert os.sched_getscheduler(supervisor.pid) == os.SCHED_IDLE
    assert os.sched_getscheduler(0) != os.SCHED_IDLE   # the instrument itself keeps its priority


def test_killed_generator_pools_keep_serving_and_it_comes_back(kit_model_file, pools_for):
    specs = kit_specs(kit_model_file)
    pools = pools_for(specs)
    supervisor = supervised(specs, pools, seed=7)
    with supervisor:
        assert wait_serving(pools, full(pools), timeout=60)
        first_pid = supervisor.pid
        os.kill(first_pid, signal.SIGKILL)
        assert wait_serving(pools, lambda: not supervisor.alive or supervisor.pid != first_pid, timeout=10)
        generated = pools.stats().generated

        served = [pools.take(0) for _ in range(6)]          # 3 fresh, then replays
        for s in served:
            pools.release(0, s)
        assert -1 not in served and len(set(served)) == 3

        came_back = lambda: supervisor.restarts >= 1 and pools.fresh(0) == 2  # noqa: E731
        assert wait_serving(pools, came_back, timeout=60)
        assert supervisor.pid != first_pid
        assert pools.stats().generated >= generated + 2
        assert pools.fresh(1) == 3
    assert not supervisor.alive


def test_restart_serves_at_once_from_the_cache(kit_model_file, pools_for, tmp_path):
    specs = kit_specs(kit_model_file)
    pools = pools_for(specs)
    with supervised(specs, pools, seed=11, cache_dir=tmp_path):
        assert wait_serving(pools, full(pools), timeout=60)
        played = pools.take(0)
        pools.release(0, played)
        assert wait_serving(pools, lambda: pools.fresh(0) == 2 and pools.available(0) == 3, timeout=5)
    # stopping saved the pools
    assert all(path.is_file() for path in cache_files(specs, tmp_path))
    kept = {int(pools.seed[p, s]): pools.audio[p][s].copy() for p in range(2) for s in range(3)}

    restarted = pools_for(specs)
    assert load_pools(restarted, specs, tmp_path) == [3, 3]
    assert [restarted.fresh(0), restarted.fresh(1)] == [2, 3]
    for p in range(2):
        for _ in range(3):
            s = restarted.take(p)
            assert s >= 0
            assert np.array_equal(restarted.audio[p][s], kept[int(restarted.seed[p, s])])
    assert restarted.stats().fresh_hit_ratio == pytest.approx(5 / 6)


def test_stop_ends_the_process_and_it_saves(kit_model_file, pools_for, tmp_path):
    specs = kit_specs(kit_model_file, pool_size=1)
    pools = pools_for(specs)
    supervisor = supervised(specs, pools, seed=13, cache_dir=tmp_path).start()
    assert wait_serving(pools, full(pools), timeout=60)
    supervisor.stop(timeout=20)
    assert not supervisor.alive and supervisor.restarts == 0
    assert all(path.is_file() for path in cache_files(specs, tmp_path))


def test_variation_tuning_and_an_unusable_pad(kit_model_file, pools_for, tmp_path, caplog):
    import soundfile

    source = tmp_path / "hit.wav"
    t = np.arange(800) / 22050
    soundfile.write(source, (np.sin(2 * np.pi * 180 * t) * np.exp(-t * 30)).astype(np.float32), 22050)
    specs = [
        PadSpec("tuned", kit_model_file, "kick", 2, FAST, tune=2.0, sample_rate=48000),
        PadSpec("varied", kit_model_file, "snare", 2, Settings(steps=2, strength=0.5), source=source),
        PadSpec("varied_plain", kit_model_file, "snare", 2, Settings(steps=2, strength=0.5)),
        PadSpec("unknown", kit_model_file, "cowbell", 2, FAST),
    ]
    pools = pools_for(specs)
    producer = PoolFiller(config(specs, pools, seed=17), pools)
    assert "cowbell" in caplog.text and producer.jobs[3] is None

    batches = []
    while batch := producer.plan():
        batches.append(sorted(set(batch)))
        producer.make(batch)
        producer.deliver(quiet=0.0)
    assert sorted(batches) == [[0], [0], [1], [1], [2], [2]]   # a variation batch cannot take plain items
    assert [pools.fresh(p) for p in range(4)] == [2, 2, 2, 0]
    tuned_frames = pools.layout[0].frames
    assert tuned_frames == int(np.ceil(1024 * 48000 / 44100 * 2 ** (-2 / 12)))
    assert np.all(np.abs(pools.frames[0, :2] - tuned_frames) <= 1)
    assert np.all(pools.frames[1, :2] == 1024)
