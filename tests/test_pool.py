"""Pools in shared memory: take/release/service against a producer, in one process and across
processes, and the cache they persist to."""

from __future__ import annotations

import multiprocessing
import random
import threading

import numpy as np
import pytest

from engine.cache import cache_files, load_pools, save_pools
from engine.settings import Settings
from engine.pads import PadSpec
from engine.pool import GRANTS_TOTAL, ORIGIN_STARTER, Made, PadLayout, Pools
from tests.pool_fixtures import fill, hammer_producer, pools_of  # noqa: F401


def test_take_prefers_fresh_in_publish_order(pools_of):
    pools = pools_of([(3, 2, 8)])
    assert fill(pools, 0) == [0, 1, 2]
    assert [pools.take(0), pools.take(0)] == [0, 1]
    assert pools.fresh(0) == 1
    assert pools.take(0) == 2           # fresh, although 0 and 1 could be replayed
    assert pools.fresh(0) == 0


def test_replays_least_recently_played_never_the_last(pools_of):
    pools = pools_of([(3, 2, 8), (1, 1, 4)])
    fill(pools, 0)
    fill(pools, 1)
    played = [pools.take(0) for _ in range(3)]
    replays = [pools.take(0) for _ in range(7)]
    assert replays == [0, 1, 2, 0, 1, 2, 0]
    sequence = played + replays
    assert all(a != b for a, b in zip(sequence, sequence[1:]))
    # a one-slot pool replays its only slot
    assert [pools.take(1) for _ in range(3)] == [0, 0, 0]


def test_take_on_empty_pool_returns_minus_one_and_counts(pools_of):
    pools = pools_of([(2, 2, 8)])
    assert pools.take(0) == -1
    assert pools.take(0) == -1
    stats = pools.stats().pads[0]
    assert (stats.hits, stats.misses, stats.fresh_hits, stats.available) == (2, 2, 0, 0)


def test_counters_and_stats(pools_of):
    pools = pools_of([(4, 2, 8), (2, 2, 8)])
    pools.take(1)                        # a miss
    fill(pools, 0)
    pools.note_batch([0, 0, 0, 0], made=4, rejected=1, seconds=0.5)
    for _ in range(6):
        pools.release(0, pools.take(0))  # 4 fresh, then 2 replays
    stats = pools.stats()
    pad = stats.pads[0]
    assert (pad.fresh, pad.available, pad.hits, pad.fresh_hits, pad.misses, pad.generated) == (0, 4, 6, 4, 0, 4)
    assert stats.pads[1].misses == 1
    assert (stats.generated, stats.batches, stats.rejected, stats.rate) == (4, 1, 1, 8.0)
    assert stats.fresh_hit_ratio == pytest.approx(4 / 7)
    assert int(pools.last_batch[0]) == 1 and int(pools.last_batch[1]) == 0


def test_slot_a_voice_plays_is_never_lent_or_overwritten(pools_of):
    pools = pools_of([(3, 2, 8)])
    fill(pools, 0)
    held = pools.take(0)                 # slot 0 keeps playing
    pools.release(0, pools.take(0))      # slot 1
    pools.release(0, pools.take(0))      # slot 2, the last played
    before = pools.audio[0][held].copy()

    pools.request_slots(0, 3)
    assert pools.service() == 1
    assert list(pools.owned_slots(0)) == [1]   # not 0 (playing), not 2 (last played)
    fill(pools, 0, value_of=lambda s: -7.0)
    for _ in range(5):
        pools.service()
    assert list(pools.owned_slots(0)) == []
    assert np.array_equal(pools.audio[0][held], before)

    pools.release(0, held)               # the voice ends: now slot 0 may go
    assert pools.service() == 1
    assert list(pools.owned_slots(0)) == [held]


def test_lent_slot_leaves_the_replay_list(pools_of):
    pools = pools_of([(2, 2, 8)])
    fill(pools, 0)
    pools.release(0, pools.take(0))
    pools.release(0, pools.take(0))      # both played, slot 1 last
    pools.request_slots(0, 1)
    assert pools.service() == 1          # slot 0 goes to the producer
    assert [pools.take(0) for _ in range(3)] == [1, 1, 1]  # only slot 1 is left to replay


def test_one_slot_pool_can_be_refilled(pools_of):
    pools = pools_of([(1, 2, 8)])
    fill(pools, 0)
    pools.release(0, pools.take(0))
    pools.request_slots(0, 1)
    assert pools.service() == 1
    assert pools.take(0) == -1           # lent out until refilled
    fill(pools, 0, value_of=lambda s: 0.5)
    assert pools.take(0) == 0 and pools.audio[0][0, 0, 0] == 0.5


def test_attach_shares_memory_and_checks_the_layout(pools_of):
    pools = pools_of([(2, 2, 8)])
    other = Pools.attach(pools.handle)
    try:
        fill(other, 0)
        assert pools.fresh(0) == 2 and pools.audio[0][1, 0, 0] == 2.0
        with pytest.raises(ValueError):
            Pools.attach(type(pools.handle)(pools.handle.name, (PadLayout(64, 2, 4096),)))
    finally:
        other.close()


def test_recover_finishes_a_publish_cut_short(pools_of):
    pools = pools_of([(2, 2, 8)])
    # a producer killed after making slot 0 the consumer's, before it reached the fresh ring
    pools.intent_head[0] = pools.head[0]
    pools.intent_slot[0] = 0
    pools.filled[0, 0] += 1
    assert pools.take(0) == -1
    pools.recover()
    assert pools.take(0) == 0
    pools.recover()                      # nothing left to redo
    assert pools.fresh(0) == 0


def test_concurrent_producer_process_never_touches_a_playing_slot(pools_of):
    pools = pools_of([(4, 2, 256), (2, 2, 65536)])
    context = multiprocessing.get_context("spawn")
    report = context.Array("q", 3)
    producer = context.Process(target=hammer_producer, args=(pools.handle, report))
    producer.start()
    problems: list[str] = []
    counts = {"takes": 0, "checks": 0}

    def audio_thread():
        rng = random.Random(1)
        voices: list[tuple[int, int, np.ndarray]] = []

        def enough() -> bool:   # both sides have done plenty of each thing under test
            stats = pools.stats()
            return (counts["checks"] > 1000 and report[0] > 200 and int(pools.totals[GRANTS_TOTAL]) > 100
                    and sum(pad.fresh_hits for pad in stats.pads) > 100)

        rounds = 0
        while producer.is_alive() and not (rounds % 64 == 0 and enough()):
            rounds += 1
            pools.service()
            p = rng.randrange(pools.pads)
            s = pools.take(p)
            if s >= 0:
                counts["takes"] += 1
                audio = pools.audio[p][s].copy()
                if not audio[0, 0] == audio[-1, -1] == pools.seed[p, s]:
                    problems.append(f"pad {p} slot {s} was taken before its one-shot was written")
                voices.append((p, s, audio))
            for p, s, audio in voices:
                counts["checks"] += 1
                if pools.lent[p, s] != pools.filled[p, s]:
                    problems.append(f"pad {p} slot {s} is the producer's while a voice plays it")
                if not np.array_equal(pools.audio[p][s], audio):
                    problems.append(f"pad {p} slot {s} changed while a voice played it")
            while len(voices) > 3 or (voices and rng.random() < 0.4):
                p, s, _ = voices.pop(rng.randrange(len(voices)))
                pools.release(p, s)
        report[2] = 1
        for p, s, _ in voices:
            pools.release(p, s)

    consumer = threading.Thread(target=audio_thread)
    consumer.start()
    consumer.join()
    producer.join()
    assert producer.exitcode == 0
    assert problems == []
    assert report[1] == 0, "the producer owned a slot a voice was playing"
    stats = pools.stats()
    assert report[0] > 200 and stats.generated == report[0]
    assert sum(pad.fresh_hits for pad in stats.pads) > 100
    assert counts["checks"] > 1000
    assert int(pools.totals[GRANTS_TOTAL]) > 100    # slots went back and forth


# ---- the cache ------------------------------------------------------------------------------

def _specs(model, pool_size=3):
    settings = Settings(steps=2)
    return [
        PadSpec("kick", model, "kick", pool_size, settings),
        PadSpec("snare", model, "snare", pool_size, settings),
    ]


def test_cache_round_trip_keeps_fresh_ones_fresh(pools_of, kit_model_file, tmp_path):
    specs = _specs(kit_model_file)
    pools = pools_of([(3, 2, 64), (3, 2, 64)])
    fill(pools, 0)
    pools.release(0, pools.take(0))      # slot 0 played, 1 and 2 fresh
    pools._write(0, 1, pools.audio[0][1], 1001, Made(0.5, 3.0, batch=4, position=3, tune=1.5))   # as knobs made it, last of 4
    pools._write(0, 2, pools.audio[0][2], 1002, Made(origin=ORIGIN_STARTER))
    assert save_pools(pools, specs, tmp_path) == 3
    assert [path.exists() for path in cache_files(specs, tmp_path)] == [True, False]

    again = pools_of([(3, 2, 64), (3, 2, 64)])
    assert load_pools(again, specs, tmp_path) == [3, 0]
    assert again.fresh(0) == 2 and again.available(0) == 3
    served = [again.take(0) for _ in range(3)]
    seeds = [int(again.seed[0, s]) for s in served]
    assert seeds == [1001, 1002, 1000]   # the fresh ones first, then the played one
    for s in served:
        original = int(again.seed[0, s]) - 1000
        assert np.array_equal(again.audio[0][s], pools.audio[0][original])
    assert again.made(0, served[0]) == Made(0.5, 3.0, 4, 3, tune=1.5) and again.made(0, served[1]).origin == ORIGIN_STARTER
    assert again.made(0, served[2]).batch == 1 and np.isnan(again.made(0, served[2]).guidance)


def test_cache_keys_follow_sound_settings(kit_model_file, tmp_path):
    kick, snare = _specs(kit_model_file)
    twin = PadSpec("kick2", kit_model_file, "kick", 5, kick.settings)
    louder = PadSpec("kick3", kit_model_file, "kick", 3, Settings(steps=3))
    paths = cache_files([kick, snare, twin, louder], tmp_path)
    assert len(set(paths)) == 4
    assert paths[2].name == paths[0].stem + "-1.npz"   # same sound, its own file


def test_corrupt_or_mismatched_cache_is_ignored_then_replaced(pools_of, kit_model_file, tmp_path):
    specs = _specs(kit_model_file)
    kick_file, snare_file = cache_files(specs, tmp_path)
    kick_file.write_bytes(b"PK\x03\x04 not really a zip")
    np.savez(snare_file, version=np.int64(2), audio=np.zeros((2, 2, 32), np.float32),   # slots are 64 long
             frames=np.array([32, 32]), seeds=np.array([1, 2]), fresh=np.array([True, False]),
             made=np.full((2, 2), np.nan), origin=np.zeros(2, np.int64))

    pools = pools_of([(3, 2, 64), (3, 2, 64)])
    assert load_pools(pools, specs, tmp_path) == [0, 0]
    assert pools.take(0) == -1

    fill(pools, 0)
    fill(pools, 1)
    assert save_pools(pools, specs, tmp_path) == 6
    again = pools_of([(3, 2, 64), (3, 2, 64)])
    assert load_pools(again, specs, tmp_path) == [3, 3]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([kick_file.name, snare_file.name])
