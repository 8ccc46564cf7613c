"""The generator process: keeps every pad's pool full (`engine.supervisor` keeps it running).

The process (multiprocessing "spawn", so it starts clean of the instrument's threads) owns torch
and the device. It loads each model once, then loops: pick the most urgent pads (empty pools
first, then the pads played most), batch the pads that share a model and settings into one
`generate` call, resample and tune the results for playback, and write them into pool slots by
the protocol in `engine.pool`. A crash or a CUDA error ends only this process: the pools keep
serving what they hold and the supervisor starts a new one.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from engine.audiofile import read_source
from engine.cache import save_pools
from engine.errors import InputError
from engine.sample_batch import Item, generate
from engine.device import pick_device, pick_dtype
from engine.modelfile import DrumDiffusion, load_model
from engine.settings import MAX_SEED, Settings
from engine.pads import PadSpec
from engine.pool import GENERATED_TOTAL, Made, Pools
from engine.resample import to_playback
from engine.plan import GeneratorConfig

IDLE_SLEEP_S = 0.02    # when every pool is full
GRANT_QUIET_S = 0.03   # after a batch, wait for lent slots until none came for this long
CPU_BATCH = 4          # on a CPU a one-shot takes seconds: 4 pads sound within seconds of a cold start
GPU_BATCH = 16
log = logging.getLogger("noisepad.generator")


@dataclass(frozen=True)
class PadJob:
    """What the generator needs to make one-shots for a pad."""

    spec: PadSpec
    model: DrumDiffusion
    class_index: int | None
    source: np.ndarray | None



class PoolFiller:
    """Keeps pools full: plans which pads to make one-shots for, makes them in batches and
    delivers them into the slots the pools lend. The generator process loops over it;
    `render` and `kit` fill their pools with it in their own process."""

    def __init__(self, config: GeneratorConfig, pools: Pools, run_index: int = 0, strict: bool = False):
        """`strict`: a pad that cannot be generated is an error, not a warning."""
        self.config = config
        self.pools = pools
        entropy = None if config.seed is None else [config.seed, run_index]
        self.rng = np.random.default_rng(entropy)
        self.jobs = _prepare_jobs(config, strict)
        self.pending: list[list[tuple[np.ndarray, int, Made]]] = [[] for _ in config.specs]
        self.last_save = time.monotonic()
        self.saved_state: tuple[int, int] | None = None

    def run(self, should_stop: Callable[[], bool]) -> None:
        self.pools.recover()
        try:
            while not should_stop():
                self.deliver(quiet=0.0)
                batch = self.plan()
                if batch:
                    self.make(batch)
                    self.deliver(quiet=GRANT_QUIET_S)
                else:
                    time.sleep(IDLE_SLEEP_S)
                self.save(every=self.config.save_every)
        finally:
            self.save(every=0.0)

    def fill(self, max_rounds: int = 1000, on_made: Callable[[int], None] | None = None) -> None:
        """Fill every pool once, here and now, with no audio thread (offline render);
        `on_made` hears how many one-shots each batch added."""
        for _ in range(max_rounds):
            batch = self.plan()
            if not batch:
                return
            made = self.make(batch)
            self.deliver(quiet=0.0)
            if on_made is not None:
                on_made(made)
        raise InputError(self.config.specs[0].model, "the model keeps producing silent or invalid audio")

    def need(self, p: int) -> int:
        if self.pools.held[p]:
            return 0   # held: the pad replays what it has
        return self.pools.sizes[p] - self.pools.fresh(p) - len(self.pending[p])

    def settings(self, p: int) -> Settings:
        """The pad's settings, with the live knobs (strength, guidance) where one has turned."""
        settings = self.jobs[p].spec.settings
        strength, guidance = float(self.pools.strength[p]), float(self.pools.guidance[p])
        if not math.isnan(strength):
            settings = replace(settings, strength=strength)
        if not math.isnan(guidance):
            settings = replace(settings, guidance=guidance)
        return settings

    def batch_key(self, p: int) -> tuple:
        # a batch shares one model and one Settings; variation and plain items cannot mix
        job = self.jobs[p]
        return (id(job.model), self.settings(p), job.source is not None)

    def plan(self) -> list[int]:
        """Pads to make one one-shot each for (a pad may repeat): the most urgent pad and the
        pads that can share its batch, most urgent first. While any of them has nothing to
        play, only those, one each: every pad sounds soon after a cold start.
        Then each one-shot goes to the pad whose fresh ones would run out first at the rate it
        is played: the pads being played stay fresh, and before anything is played the pools
        fill in turn, so no pool deepens while another waits."""
        pools = self.pools
        wanting = [p for p, job in enumerate(self.jobs) if job is not None and self.need(p) > 0]
        if not wanting:
            return []
        wanting.sort(key=lambda p: (pools.fresh(p) > 0, -int(pools.hits[p]), pools.fresh(p)))
        key = self.batch_key(wanting[0])
        sharing = [p for p in wanting if self.batch_key(p) == key]
        silent = [p for p in sharing if pools.available(p) == 0 and not self.pending[p]]
        if silent:
            return silent[: self.max_batch]
        needs = {p: self.need(p) for p in sharing}
        chosen = dict.fromkeys(sharing, 0)
        batch = []
        for _ in range(min(self.max_batch, sum(needs.values()))):
            p = min((q for q in sharing if chosen[q] < needs[q]), key=lambda q: self._lasts(q, chosen[q]))
            chosen[p] += 1
            batch.append(p)
        return batch

    def _lasts(self, p: int, extra: int) -> float:
        """How long pad p's fresh one-shots (with `extra` more) last at the rate it is played,
        in units shared by every pad: hits so far stand for its rate."""
        return (self.pools.fresh(p) + len(self.pending[p]) + extra + 1) / (int(self.pools.hits[p]) + 1)

    @property
    def max_batch(self) -> int:
        if self.config.max_batch is not None:
            return self.config.max_batch
        on_cpu = all(job is None or next(job.model.parameters()).device.type == "cpu" for job in self.jobs)
        return CPU_BATCH if on_cpu else GPU_BATCH

    def make(self, batch: list[int]) -> int:
        """Generate one one-shot per entry of `batch`; returns how many came out usable."""
        started = time.monotonic()
        first = self.jobs[batch[0]]
        seeds = [int(seed) for seed in self.rng.integers(0, MAX_SEED, size=len(batch), endpoint=True)]
        items = [Item(seed, self.jobs[p].class_index, self.jobs[p].source) for p, seed in zip(batch, seeds)]
        settings = self.settings(batch[0])   # every pad of a batch shares them (batch_key)
        results = generate(first.model, items, settings)
        rate = first.model.config.sample_rate
        made = 0
        threads = torch.get_num_threads()   # with the batch's size and place: what sets the last bits
        for position, (p, seed, audio) in enumerate(zip(batch, seeds, results)):
            if audio is None:
                continue  # NaN or silence; the pad stays wanting, so it is made again
            spec, knob = self.jobs[p].spec, float(self.pools.tune[p])
            tune = spec.tune_for(seed) + (0.0 if math.isnan(knob) else knob)
            finished = to_playback(audio, rate, spec.sample_rate, tune, spec.decay)
            made_with = Made(settings.strength, settings.guidance, len(batch), position, threads, tune=knob)
            self.pending[p].append((finished, seed, made_with))
            made += 1
        self.pools.note_batch(batch, made, len(batch) - made, time.monotonic() - started)
        return made

    def deliver(self, quiet: float) -> None:
        """Write finished one-shots into slots the producer owns, asking the audio thread for
        more where needed; keep polling while slots arrive, until none came for `quiet` s."""
        deadline = time.monotonic() + quiet
        while True:
            for p, pending in enumerate(self.pending):
                if pending and self._deliver_pad(p, pending):
                    deadline = time.monotonic() + quiet
            if not any(self.pending) or time.monotonic() >= deadline:
                return
            time.sleep(0.001)

    def _deliver_pad(self, p: int, pending: list) -> int:
        written = 0
        for slot in self.pools.owned_slots(p)[: len(pending)]:
            audio, seed, made = pending.pop(0)
            self.pools.publish(p, int(slot), audio, seed, made)
            written += 1
        if pending:
            self.pools.request_slots(p, len(pending))
        return written

    def save(self, every: float) -> None:
        """Save the pools when `every` seconds have passed and anything was made or played."""
        if self.config.cache_dir is None or time.monotonic() - self.last_save < every:
            return
        state = (int(self.pools.totals[GENERATED_TOTAL]), int(self.pools.tail.sum()))
        if state != self.saved_state:
            save_pools(self.pools, list(self.config.specs), self.config.cache_dir)
            self.saved_state = state
        self.last_save = time.monotonic()


def _prepare_jobs(config: GeneratorConfig, strict: bool) -> list[PadJob | None]:
    """One job per pad; None (and a warning) for a pad whose model, class or source is unusable."""
    models: dict[Path, DrumDiffusion] = {}
    jobs: list[PadJob | None] = []
    for spec in config.specs:
        path = Path(spec.model).resolve()
        try:
            if path not in models:
                device = pick_device(config.device)
                models[path] = load_model(path, device, pick_dtype(config.precision, device))
            model = models[path]
            model_config = model.config
            source = None
            if spec.source is not None:
                source = read_source(spec.source, model_config.sample_rate, model_config.channels, model_config.length)
            jobs.append(PadJob(spec, model, model.class_index(spec.class_name), source))
        except InputError as error:
            if strict:
                raise
            log.warning("pad %s is not generated: %s", spec.name, error)
            jobs.append(None)
    return jobs


def yield_to_audio() -> None:
    """Take CPU time only when nothing else wants it: SCHED_IDLE on Linux, else the lowest
    priority there is. A late refill only means a replay; a late audio block is a click."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):   # not Linux, or not allowed
        try:
            os.nice(19)
        except (AttributeError, OSError):
            pass


def run_generator(config: GeneratorConfig, stop_flag, run_index: int = 0) -> None:
    """The generator process's entry point: fill the pools until `stop_flag.value` is set."""
    logging.basicConfig(level=logging.WARNING, format="noisepad generator: %(message)s")
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the instrument's to handle
    yield_to_audio()
    parent = os.getppid()
    if config.threads:
        torch.set_num_threads(config.threads)
    pools = Pools.attach(config.pools)
    try:
        # also stop when orphaned: a killed instrument cannot stop us
        PoolFiller(config, pools, run_index).run(lambda: bool(stop_flag.value) or os.getppid() != parent)
    finally:
        pools.close()
