"""Per-pad pools of one-shots in shared memory, shared lock-free by two parties.

The *consumer* is the instrument's audio callback thread: only it calls `take`, `release`,
`refresh` and `service`, and writes `held` and the live knobs `strength` and `guidance`. The *producer* is the generator process: only it calls `owned_slots`,
`request_slots`, `publish`, `recover` and `note_batch`. `Pools.create` runs in the instrument
process, `Pools.attach(handle)` in the generator process; both see the same numpy views.

Per slot, `lent[s]` is written by the consumer only and `filled[s]` by the producer only. A slot
belongs to the producer iff lent > filled and to the consumer iff lent == filled; each side
changes ownership only by bumping its own counter, and only for a slot it owns. Every slot starts
lent and empty (lent=1, filled=0). The producer writes audio, frames and seed first, then bumps
`filled`, then pushes the slot into the pad's fresh ring (single-producer single-consumer:
producer-owned `head`, consumer-owned `tail`). The consumer lends a played slot back only when
the producer asked (`wants[p]`, producer-owned) and only if no voice plays it (`voices[s]`,
consumer-owned), then bumps `lent` and `grants[p]`. A slot that a voice still plays is never
lent, so never overwritten.

Why no lock is needed: every field has exactly one writer; aligned 8-byte stores are atomic;
x86-64 (TSO) keeps stores in program order and does not reorder loads with older loads, so a
reader that sees a bumped counter (`filled`, `head`, `lent`, `grants`) also sees everything its
writer stored before it, and the producer has copied the audio before it publishes. (On weakly
ordered CPUs such as ARM this relies on the interpreter's own barriers; CPython executes enough
locked instructions between two numpy stores that this holds in practice, but is not guaranteed.)

Played slots sit in a consumer-private least-recently-played list (an intrusive doubly linked
list in shared memory, so `take` is O(1) and allocates no arrays). Counters are plain int64
cells readable by anyone: fresh = head - tail, hits, fresh hits and misses (consumer), one-shots
generated, batches and the generation rate (producer).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from multiprocessing import shared_memory

import numpy as np

MAGIC = 0x6E6F697365706164  # "noisepad"
NOT_LISTED = -2             # lru_next of a slot that is not in the played list
ALIGN = 64
GUARD_FRAMES = 1024   # zeros before and after all the audio: a reader may window past a one-shot's ends

# writer of each field: C = consumer (audio thread), P = producer (generator process)
PAD_FIELDS = (
    "head", "intent_slot", "intent_head", "wants", "generated", "last_batch",  # P
    "tail", "grants", "hits", "fresh_hits", "misses", "lru_first", "lru_last", "held",  # C
)
# live generation settings per pad, written by the consumer (a knob), read by the producer;
# NaN: as the pad's spec says. Per slot, the producer records the values each one-shot was made with.
PAD_KNOBS = ("strength", "guidance", "tune")   # C
SLOT_KNOBS = ("made_strength", "made_guidance", "made_tune")   # P
SLOT_FIELDS = (
    "filled", "frames", "seed", "made_batch", "made_position", "made_threads", "origin", "ring",  # P
    "lent", "voices", "lru_prev", "lru_next",  # C
)
ORIGIN_GENERATED, ORIGIN_STARTER = 0, 1   # a slot's one-shot came from the generator, or a model's starter
TOTAL_FIELDS = ("wants_total", "generated_total", "batches", "rejected",  # P
                "grants_total")                                            # C


@dataclass(frozen=True)
class Made:
    """How a slot's one-shot was made, beyond its pad's spec and seed (what its recipe needs):
    the live knobs' values (NaN: as the spec says), the size of the batch it was generated in,
    its place there and the CPU threads it took (0: not known; another size, place or thread
    count changes the last bits) and where it came from."""

    strength: float = math.nan
    guidance: float = math.nan
    batch: int = 1
    position: int = 0
    threads: int = 0
    origin: int = ORIGIN_GENERATED
    tune: float = math.nan        # the tune knob's semitones on top of the pad's (NaN: not turned)


@dataclass(frozen=True)
class PadLayout:
    pool_size: int
    channels: int
    frames: int


@dataclass(frozen=True)
class PoolsHandle:
    """What another process needs to attach: picklable."""

    name: str
    layout: tuple[PadLayout, ...]


@dataclass(frozen=True)
class PadStats:
    fresh: int
    available: int     # slots holding a one-shot the consumer can play
    hits: int          # every take, served or not
    fresh_hits: int
    misses: int
    generated: int


@dataclass(frozen=True)
class PoolStats:
    pads: tuple[PadStats, ...]
    generated: int
    batches: int
    rejected: int
    rate: float        # one-shots per second while generating (smoothed)

    @property
    def fresh_hit_ratio(self) -> float:
        hits = sum(pad.hits for pad in self.pads)
        return sum(pad.fresh_hits for pad in self.pads) / hits if hits else 1.0


@dataclass(frozen=True)
class PadSnapshot:
    """A consistent copy of a pad's filled slots (for the cache)."""

    audio: np.ndarray   # (n, channels, frames) float32
    frames: np.ndarray  # (n,) int64
    seeds: np.ndarray   # (n,) int64
    fresh: np.ndarray   # (n,) bool
    made: tuple[Made, ...]


class Pools:
    """All pads' pools. Fields are numpy views into one shared memory block: per pad (pads,),
    per slot (pads, largest pool), and `audio[p]` of shape (pool_size, channels, frames)."""

    audio: list[np.ndarray]
    audio_flat: np.ndarray          # every pad's audio, one after another between guards of zeros
    audio_offsets: np.ndarray       # (pads,): where pad p's audio starts in audio_flat
    head: np.ndarray; tail: np.ndarray; wants: np.ndarray; grants: np.ndarray        # noqa: E702
    hits: np.ndarray; fresh_hits: np.ndarray; misses: np.ndarray                       # noqa: E702
    generated: np.ndarray; last_batch: np.ndarray                                      # noqa: E702
    lent: np.ndarray; filled: np.ndarray; voices: np.ndarray                           # noqa: E702
    frames: np.ndarray; seed: np.ndarray; origin: np.ndarray                           # noqa: E702
    made_batch: np.ndarray; made_position: np.ndarray; made_threads: np.ndarray         # noqa: E702
    totals: np.ndarray; rate: np.ndarray                                               # noqa: E702
    held: np.ndarray; strength: np.ndarray; guidance: np.ndarray; tune: np.ndarray     # noqa: E702
    made_strength: np.ndarray; made_guidance: np.ndarray; made_tune: np.ndarray        # noqa: E702

    def __init__(self, memory: shared_memory.SharedMemory, layout: tuple[PadLayout, ...], owner: bool):
        self._memory = memory
        self._owner = owner
        self.layout = tuple(layout)
        self.sizes = tuple(pad.pool_size for pad in self.layout)
        views, _ = _carve(memory.buf, self.layout)
        self._header = views.pop("header")
        for name, view in views.items():
            setattr(self, name, view)

    # ---- lifetime ---------------------------------------------------------------------------

    @classmethod
    def create(cls, layout) -> "Pools":
        layout = tuple(layout)
        _check_layout(layout)
        _, nbytes = _carve(None, layout)
        memory = shared_memory.SharedMemory(create=True, size=nbytes)
        pools = cls(memory, layout, owner=True)
        pools.lent[:] = 1
        pools.lru_next[:] = NOT_LISTED
        pools.lru_prev[:] = -1
        pools.lru_first[:] = -1
        pools.lru_last[:] = -1
        pools.intent_slot[:] = -1
        for name in PAD_KNOBS + SLOT_KNOBS:
            getattr(pools, name)[:] = np.nan
        pools._header[0] = MAGIC
        return pools

    @classmethod
    def attach(cls, handle: PoolsHandle) -> "Pools":
        layout = tuple(handle.layout)
        _, nbytes = _carve(None, layout)
        memory = shared_memory.SharedMemory(name=handle.name)
        header = np.ndarray((1,), np.int64, buffer=memory.buf)
        if memory.size < nbytes or header[0] != MAGIC:
            del header
            memory.close()
            raise ValueError(f"shared memory {handle.name} does not hold pools of this layout")
        del header
        return cls(memory, layout, owner=False)

    @property
    def handle(self) -> PoolsHandle:
        return PoolsHandle(self._memory.name, self.layout)

    @property
    def pads(self) -> int:
        return len(self.layout)

    def close(self) -> None:
        """Drop this process's mapping; the creator also removes the shared memory."""
        for name in ("audio", "audio_flat", "_header", *PAD_FIELDS, *SLOT_FIELDS, *PAD_KNOBS, *SLOT_KNOBS, "totals", "rate"):
            self.__dict__.pop(name, None)
        try:
            self._memory.close()
        except BufferError:
            pass  # someone still holds a view; the mapping goes when it does
        if self._owner:
            self._owner = False
            self._memory.unlink()

    def __enter__(self) -> "Pools":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- anyone, lock-free reads -------------------------------------------------------------

    def fresh(self, p: int) -> int:
        tail = self.tail[p]  # first: read after head, a take in between could make it negative
        return int(self.head[p] - tail)

    def available(self, p: int) -> int:
        n = self.sizes[p]
        return int(np.count_nonzero(self.lent[p, :n] == self.filled[p, :n]))

    def stats(self) -> PoolStats:
        pads = tuple(
            PadStats(self.fresh(p), self.available(p), int(self.hits[p]), int(self.fresh_hits[p]),
                     int(self.misses[p]), int(self.generated[p]))
            for p in range(self.pads)
        )
        t = self.totals
        return PoolStats(pads, int(t[GENERATED_TOTAL]), int(t[BATCHES]), int(t[REJECTED]), float(self.rate[0]))

    # ---- consumer: the audio callback thread only -------------------------------------------

    def take(self, p: int) -> int:
        """A slot to play, fresh if any, else the least recently played one that is not the last
        played (unless it is the only one); -1 when the pool is empty. O(1), never waits."""
        self.hits[p] += 1
        tail = self.tail[p]
        if self.head[p] > tail:
            s = int(self.ring[p, tail % self.sizes[p]])
            self.tail[p] = tail + 1
            self.fresh_hits[p] += 1
        else:
            s = int(self.lru_first[p])  # the last played is at the other end
            if s < 0:
                self.misses[p] += 1
                return -1
            self._unlist(p, s)
        self._append_played(p, s)
        self.voices[p, s] += 1
        return s

    def take_slot(self, p: int, s: int) -> int:
        """Play slot s, a played (not fresh) one-shot the consumer holds: a replay of a take
        chooses its one-shots itself. Returns s."""
        self.hits[p] += 1
        self._unlist(p, s)
        self._append_played(p, s)
        self.voices[p, s] += 1
        return s

    def refresh(self, p: int) -> None:
        """Make every fresh one-shot of pad p stale (played): the producer replaces them first,
        and they play only while nothing new has come."""
        tail, head = int(self.tail[p]), int(self.head[p])
        for i in range(tail, head):
            s = int(self.ring[p, i % self.sizes[p]])
            self._append_played(p, s)
        self.tail[p] = head

    def release(self, p: int, s: int) -> None:
        """A voice playing slot s of pad p has ended."""
        if s >= 0:
            self.voices[p, s] -= 1

    def service(self) -> int:
        """Lend played slots to the producer where it asked for them. Call once per block."""
        if self.totals[WANTS_TOTAL] == self.totals[GRANTS_TOTAL]:
            return 0
        granted = 0
        for p in range(self.pads):
            while self.wants[p] > self.grants[p]:
                s = self._lendable(p)
                if s < 0:
                    break
                self._unlist(p, s)
                self.lent[p, s] += 1
                self.grants[p] += 1
                self.totals[GRANTS_TOTAL] += 1
                granted += 1
        return granted

    def _lendable(self, p: int) -> int:
        """Least recently played slot no voice plays, never the last played (in a pool of more
        than one slot: a one-slot pool could otherwise never be refilled)."""
        last = self.lru_last[p] if self.sizes[p] > 1 else -1
        s = int(self.lru_first[p])
        while s >= 0:
            if s != last and self.voices[p, s] == 0:
                return s
            s = int(self.lru_next[p, s])
        return -1

    def _append_played(self, p: int, s: int) -> None:
        last = int(self.lru_last[p])
        self.lru_prev[p, s] = last
        self.lru_next[p, s] = -1
        if last >= 0:
            self.lru_next[p, last] = s
        else:
            self.lru_first[p] = s
        self.lru_last[p] = s

    def _unlist(self, p: int, s: int) -> None:
        before, after = int(self.lru_prev[p, s]), int(self.lru_next[p, s])
        if before >= 0:
            self.lru_next[p, before] = after
        else:
            self.lru_first[p] = after
        if after >= 0:
            self.lru_prev[p, after] = before
        else:
            self.lru_last[p] = before
        self.lru_prev[p, s] = -1
        self.lru_next[p, s] = NOT_LISTED

    # ---- producer: the generator process only -----------------------------------------------

    def owned_slots(self, p: int) -> np.ndarray:
        """Slots the producer may write now."""
        n = self.sizes[p]
        return np.flatnonzero(self.lent[p, :n] > self.filled[p, :n])

    def request_slots(self, p: int, count: int) -> None:
        """Ask for `count` slots in all (requests still outstanding included)."""
        more = count - int(self.wants[p] - self.grants[p])
        if more > 0:
            self.wants[p] += more
            self.totals[WANTS_TOTAL] += more

    def publish(self, p: int, s: int, audio: np.ndarray, seed: int, made: Made = Made()) -> None:
        """Copy a one-shot (channels, frames) into slot s, which the producer owns, and make it
        fresh. Longer audio is cut to the pad's frames."""
        self._write(p, s, audio, seed, made)
        self.intent_head[p] = self.head[p]   # redo record, see recover()
        self.intent_slot[p] = s
        self.filled[p, s] += 1               # now the consumer's ...
        self._push_fresh(p, s)               # ... and visible to take()
        self.intent_slot[p] = -1
        self.generated[p] += 1
        self.totals[GENERATED_TOTAL] += 1

    def _write(self, p: int, s: int, audio: np.ndarray, seed: int, made: Made) -> None:
        view = self.audio[p][s]
        if audio.ndim != 2 or audio.shape[0] != view.shape[0]:
            raise ValueError(f"pad {p} holds ({view.shape[0]}, frames) audio, not {audio.shape}")
        n = min(audio.shape[-1], view.shape[-1])
        view[:, :n] = audio[:, :n]
        self.frames[p, s] = n
        self.seed[p, s] = seed
        self.made_strength[p, s], self.made_guidance[p, s] = made.strength, made.guidance
        self.made_tune[p, s] = made.tune
        self.made_batch[p, s], self.made_position[p, s] = made.batch, made.position
        self.made_threads[p, s], self.origin[p, s] = made.threads, made.origin

    def made(self, p: int, s: int) -> Made:
        return Made(float(self.made_strength[p, s]), float(self.made_guidance[p, s]),
                    int(self.made_batch[p, s]), int(self.made_position[p, s]), int(self.made_threads[p, s]),
                    int(self.origin[p, s]), float(self.made_tune[p, s]))

    def _push_fresh(self, p: int, s: int) -> None:
        head = self.head[p]
        self.ring[p, head % self.sizes[p]] = s
        self.head[p] = head + 1

    def recover(self) -> None:
        """Finish a publish that a killed producer left between `filled` and `head`; otherwise
        that slot would belong to the consumer without being reachable. Call on attach."""
        for p in range(self.pads):
            s = int(self.intent_slot[p])
            if s < 0:
                continue
            if self.lent[p, s] == self.filled[p, s] and self.head[p] == self.intent_head[p]:
                self._push_fresh(p, s)
            self.intent_slot[p] = -1

    def note_batch(self, pads: list[int], made: int, rejected: int, seconds: float) -> None:
        """Count a finished batch: which pads it served, one-shots made and rejected, its time."""
        self.totals[BATCHES] += 1
        self.totals[REJECTED] += rejected
        for p in set(pads):
            self.last_batch[p] = self.totals[BATCHES]
        if seconds > 0:
            rate = made / seconds
            self.rate[0] = rate if self.rate[0] == 0 else 0.7 * self.rate[0] + 0.3 * rate

    # ---- before play, and the cache ----------------------------------------------------------

    def preload(self, p: int, audio: np.ndarray, seed: int, fresh: bool, made: Made = Made()) -> bool:
        """Put a cached or starter one-shot into an empty slot, fresh or already played. Only
        before the audio callback and the generator start: it acts as both parties. False when full."""
        owned = self.owned_slots(p)
        if len(owned) == 0:
            return False
        s = int(owned[0])
        self._write(p, s, audio, seed, made)
        self.filled[p, s] += 1
        if fresh:
            self._push_fresh(p, s)
        else:
            self._append_played(p, s)
        return True

    def snapshot(self, p: int) -> PadSnapshot:
        """Copy the pad's filled slots, dropping any lent to the producer while copying (it may
        be writing them). Safe from any thread but the audio callback."""
        n = self.sizes[p]
        tail, head = int(self.tail[p]), int(self.head[p])
        fresh_slots = {int(self.ring[p, i % n]) for i in range(tail, head)}
        kept = []
        for s in range(n):
            lent = int(self.lent[p, s])
            if lent != self.filled[p, s]:
                continue
            copy = self.audio[p][s].copy()
            about = (int(self.frames[p, s]), int(self.seed[p, s]), s in fresh_slots, self.made(p, s))
            if self.lent[p, s] == lent:
                kept.append((copy, *about))
        if not kept:
            empty = np.zeros((0, *self.audio[p].shape[1:]), np.float32)
            return PadSnapshot(empty, np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, bool), ())
        audio, frames, seeds, fresh, made = zip(*kept)
        return PadSnapshot(np.stack(audio), np.array(frames, np.int64), np.array(seeds, np.int64),
                           np.array(fresh, bool), made)


WANTS_TOTAL, GENERATED_TOTAL, BATCHES, REJECTED, GRANTS_TOTAL = range(len(TOTAL_FIELDS))


def _check_layout(layout: tuple[PadLayout, ...]) -> None:
    if not layout:
        raise ValueError("pools need at least one pad")
    for pad in layout:
        if pad.pool_size < 1 or pad.channels < 1 or pad.frames < 1:
            raise ValueError(f"pool size, channels and frames must be positive: {pad}")


def _carve(buffer, layout: tuple[PadLayout, ...]) -> tuple[dict, int]:
    """Views of every field at fixed offsets in `buffer` (None: only measure)."""
    pads = len(layout)
    slots = max(pad.pool_size for pad in layout)
    arrays = [("header", np.int64, (1,)), ("totals", np.int64, (len(TOTAL_FIELDS),)), ("rate", np.float64, (1,))]
    arrays += [(name, np.int64, (pads,)) for name in PAD_FIELDS]
    arrays += [(name, np.int64, (pads, slots)) for name in SLOT_FIELDS]
    arrays += [(name, np.float64, (pads,)) for name in PAD_KNOBS]
    arrays += [(name, np.float64, (pads, slots)) for name in SLOT_KNOBS]
    views, offset = {}, 0
    for name, dtype, shape in arrays:
        views[name] = None if buffer is None else np.ndarray(shape, dtype, buffer=buffer, offset=offset)
        offset = _aligned(offset + int(np.prod(shape)) * np.dtype(dtype).itemsize)
    first = offset
    offset += GUARD_FRAMES * 4
    audio, starts = [], []
    for pad in layout:
        shape = (pad.pool_size, pad.channels, pad.frames)
        audio.append(None if buffer is None else np.ndarray(shape, np.float32, buffer=buffer, offset=offset))
        starts.append((offset - first) // 4)
        offset = _aligned(offset + int(np.prod(shape)) * 4)
    offset = _aligned(offset + GUARD_FRAMES * 4)
    views["audio"] = audio
    views["audio_flat"] = None if buffer is None else np.ndarray(((offset - first) // 4,), np.float32, buffer=buffer, offset=first)
    views["audio_offsets"] = np.array(starts, np.int64)
    return views, offset


def _aligned(offset: int) -> int:
    return -(-offset // ALIGN) * ALIGN
