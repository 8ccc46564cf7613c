"""`noisepad play` and `noisepad devices`: live play from MIDI through the audio device."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import sounddevice as sd

from engine.cache import load_pools, save_pools
from engine.errors import InputError
from engine.modelconfig import read_config
from engine.pool import Pools
from engine.supervisor import GeneratorConfig, GeneratorSupervisor, pool_layout
from instrument.kit import pad_mixes
from instrument.live import LiveEngine, Recorder
from instrument.midi_in import compiled_apis, input_names, open_input
from instrument.mixer import Mixer
from instrument.preset import Preset, load_preset
from instrument.scheduler import EventQueue

RECORD_BUFFER_S = 10.0


@dataclass(frozen=True)
class PlayOptions:
    preset: Path | None = None
    midi_in: str | None = None
    virtual: bool = False
    midi_api: str | None = None
    channel: int | None = None
    device: str | int | None = None
    samplerate: int | None = None
    blocksize: int | None = None
    record: Path | None = None
    cache: Path | None = None
    generator_device: str | None = None   # None: the best there is (resolved in the generator process)
    precision: str = "fp32"
    status_every: float = 0.5


def play(options: PlayOptions) -> int:
    preset = load_preset(options.preset)
    device = _output_device(options.device if options.device is not None else preset.audio_device)
    rate = _samplerate(device, options.samplerate or preset.samplerate, preset)
    preset = load_preset(preset.path, samplerate=rate)
    blocksize = options.blocksize or preset.blocksize
    _check_record_path(options.record)
    specs = [pad.spec for pad in preset.pads]
    stop = _stop_on_signals()
    sys.setswitchinterval(0.0005)  # the audio and MIDI threads wait less for the GIL
    with ExitStack() as stack:
        pools = stack.enter_context(Pools.create(pool_layout(specs)))
        cached = sum(load_pools(pools, specs, options.cache))
        supervisor = GeneratorSupervisor(GeneratorConfig(
            tuple(specs), pools.handle, device=options.generator_device, precision=options.precision,
            cache_dir=options.cache, threads=max(1, (os.cpu_count() or 2) - 1),
        ))
        stack.callback(_save_and_stop, supervisor, pools, specs, options.cache)
        supervisor.start()
        queue = EventQueue()
        recorder = Recorder(RECORD_BUFFER_S, rate) if options.record else None
        mixer = Mixer(pools, pad_mixes(preset), rate, max_blocksize=max(blocksize, 4096))
        channel = options.channel if options.channel is not None else preset.midi_channel
        engine = LiveEngine(mixer, queue, preset.note_to_pad, rate, channel, recorder)
        # MIDI before audio: python-rtmidi holds the GIL while it opens a JACK client, and
        # a running Python audio callback would then stall the JACK graph until it times out
        clock = StreamClock()
        port = open_input(queue, clock, options.midi_in or preset.midi_input,
                          options.virtual or preset.midi_virtual, options.midi_api)
        stack.callback(port.close_port)
        clock.stream = stack.enter_context(_open_stream(device, rate, blocksize, engine))
        if recorder is not None:
            _start_writer(stack, recorder, options.record, rate)
        print(f"noisepad: {preset.name} on {device['name']} at {rate} Hz, block {blocksize}; "
              f"MIDI in: {_port_label(options, preset)}; {cached} one-shots from the cache. Ctrl-C stops.", file=sys.stderr, flush=True)
        _status_loop(stop, engine, pools, supervisor, options.status_every)
        print("\n" + _summary(engine, pools, supervisor), file=sys.stderr, flush=True)
    return 0


class StreamClock:
    """The audio stream's clock, for stamping MIDI arrivals; 0 until the stream runs."""

    stream = None

    def __call__(self) -> float:
        return 0.0 if self.stream is None else self.stream.time


def _port_label(options: PlayOptions, preset: Preset) -> str:
    if options.virtual or preset.midi_virtual:
        return "virtual port 'noisepad'"
    return options.midi_in or preset.midi_input or "first port"


def _output_device(wanted) -> dict:
    try:
        return sd.query_devices(wanted, "output")
    except (ValueError, sd.PortAudioError) as error:
        raise InputError(None, f"audio output device: {error}") from None


def _samplerate(device: dict, wanted: int | None, preset: Preset) -> int:
    """The rate asked for, else the model's if the device takes it, else the device's own."""
    model_rate = read_config(preset.pads[0].spec.model).sample_rate
    for rate in ([wanted] if wanted else [model_rate, int(device["default_samplerate"])]):
        try:
            sd.check_output_settings(device=device["index"], samplerate=rate, channels=2, dtype="float32")
            return rate
        except (ValueError, sd.PortAudioError) as error:
            problem = error
    raise InputError(None, f"audio device '{device['name']}' cannot play at {wanted or model_rate} Hz ({problem})")


def _check_record_path(path: Path | None) -> None:
    if path is not None and not path.parent.is_dir():
        raise InputError(path, "folder for the recording does not exist")


def _open_stream(device: dict, rate: int, blocksize: int, engine: LiveEngine):
    try:
        stream = sd.OutputStream(device=device["index"], samplerate=rate, blocksize=blocksize, channels=2,
                                 dtype="float32", latency="low", callback=engine.callback)
        stream.start()
    except sd.PortAudioError as error:
        raise InputError(None, f"cannot open audio device '{device['name']}' ({error})") from None
    return stream


def _start_writer(stack: ExitStack, recorder: Recorder, path: Path, rate: int) -> None:
    """Writes the recording on its own thread; the callback only copies into a ring."""
    import soundfile

    done = threading.Event()
    handle = soundfile.SoundFile(str(path), "w", samplerate=rate, channels=2, subtype="PCM_24")

    def write() -> None:
        while not done.wait(0.1):
            handle.write(recorder.take())
        handle.write(recorder.take())
        handle.close()

    thread = threading.Thread(target=write, name="noisepad-recorder", daemon=True)
    thread.start()
    stack.callback(thread.join)
    stack.callback(done.set)


def _save_and_stop(supervisor: GeneratorSupervisor, pools: Pools, specs, cache: Path | None) -> None:
    supervisor.stop()
    save_pools(pools, specs, cache)


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()

    def handler(signum, frame) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return stop


def _status_loop(stop: threading.Event, engine: LiveEngine, pools: Pools, supervisor, every: float) -> None:
    tty = sys.stderr.isatty()
    last_line = 0.0
    started, ready = time.monotonic(), False
    while not stop.wait(every):
        if not ready and all(pools.available(p) > 0 for p in range(pools.pads)):
            ready = True
            print(f"{chr(13) if tty else ''}noisepad: every pad ready after {time.monotonic() - started:.1f} s",
                  file=sys.stderr, flush=True)
        if tty:
            print("\r" + _status(engine, pools, supervisor), end="", file=sys.stderr, flush=True)
        elif time.monotonic() - last_line >= 10:
            print(_status(engine, pools, supervisor), file=sys.stderr, flush=True)
            last_line = time.monotonic()


def _status(engine: LiveEngine, pools: Pools, supervisor) -> str:
    stats, pool = engine.stats(), pools.stats()
    fresh = sum(p.fresh for p in pool.pads)
    size = sum(pools.sizes)
    ready = sum(p.available > 0 for p in pool.pads)
    generator = "up" if supervisor.alive else "restarting"
    return (f"pads {ready}/{len(pool.pads)} ready, fresh {fresh}/{size} | hits {stats.hits} "
            f"({pool.fresh_hit_ratio:.0%} fresh) | {pool.rate:.1f} shots/s, generator {generator} | "
            f"voices {stats.voices} | xruns {stats.xruns} | callback p99 {stats.p99_ms:.2f}/{stats.budget_ms:.1f} ms  ")


def _summary(engine: LiveEngine, pools: Pools, supervisor) -> str:
    stats, pool = engine.stats(), pools.stats()
    return (f"noisepad: stopped. hits {stats.hits}, fresh {pool.fresh_hit_ratio:.0%}, empty {stats.empty}, "
            f"unmapped {stats.unmapped}, late {stats.late}, xruns {stats.xruns}, callbacks {stats.callbacks}, "
            f"callback p50 {stats.p50_ms:.3f} ms p99 {stats.p99_ms:.3f} ms, note delay {stats.delay_ms:.2f} ms, "
            f"generated {pool.generated}, generator restarts {supervisor.restarts}")


def list_devices() -> str:
    lines = ["MIDI inputs:"]
    for api in compiled_apis():
        try:
            names = input_names(api)
            lines += [f"  [{api}] {name}" for name in names] or [f"  [{api}] (none)"]
        except InputError as error:
            lines.append(f"  [{api}] unavailable: {error.problem}")
    lines.append("Audio outputs:")
    hostapis = sd.query_hostapis()
    for index, device in enumerate(sd.query_devices()):
        if device["max_output_channels"] > 0:
            api = hostapis[device["hostapi"]]["name"]
            lines.append(f"  {index}: {device['name']} ({api}, {int(device['default_samplerate'])} Hz)")
    return "\n".join(lines)
