"""`noisepad play`: live play from MIDI, as a JACK client or through a PortAudio device."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.cache import load_pools, save_pools
from engine.errors import InputError, error_line
from engine.pool import Pools
from engine.starter import load_starters
from engine.supervisor import GeneratorSupervisor
from instrument.audio_callback import AudioCallback, Recorder
from instrument.controls import ControlMap
from instrument.dashboard import status_display
from instrument.hitlog import HitLog, HitLogWriter, hit_log_path
from instrument.keepers import write_keeper
from instrument.preset import Preset, load_preset
from instrument.run_setup import RunSetup, setup_run

RECORD_BUFFER_S = 10.0


@dataclass(frozen=True)
class PlayOptions:
    preset: Path | None = None
    audio: str | None = None              # jack, portaudio; None: JACK when a server answers
    outputs: str = "main"                 # main, or pads: one more stereo JACK port pair per pad
    midi_in: str | None = None
    virtual: bool = False
    midi_api: str | None = None
    channel: int | None = None
    device: str | int | None = None
    samplerate: int | None = None
    blocksize: int | None = None
    record: Path | None = None
    cache: Path | None = None
    keep_dir: Path = Path("noisepad-keepers")
    generator_device: str | None = None   # None: the best there is (resolved in the generator process)
    precision: str = "fp32"
    status_every: float = 0.5


def play(options: PlayOptions) -> int:
    preset = load_preset(options.preset)
    player = _open_player(options, preset)
    try:
        return _play(options, setup_run(preset, player.rate), player)
    finally:
        player.close()


def _play(options: PlayOptions, setup: RunSetup, player) -> int:
    _check_record_path(options.record)
    preset, specs = setup.preset, list(setup.specs)
    stop = _stop_on_signals()
    sys.setswitchinterval(0.0005)  # the audio and MIDI threads wait less for the GIL
    with ExitStack() as stack:
        pools = stack.enter_context(setup.create_pools())
        cached = sum(load_pools(pools, specs, options.cache))
        starters = sum(load_starters(pools, specs))   # pads the cache left empty sound at once
        supervisor = GeneratorSupervisor(setup.generator_config(
            pools, device=options.generator_device, precision=options.precision,
            cache_dir=options.cache, threads=max(1, (os.cpu_count() or 2) - 1),
        ))
        stack.callback(_save_and_stop, supervisor, pools, specs, options.cache)
        supervisor.start()
        recorder = Recorder(RECORD_BUFFER_S, player.rate) if options.record else None
        hit_log = HitLog(pools) if options.record else None
        mixer_blocksize = max(player.blocksize, 8192)
        mixer = setup.mixer(pools, mixer_blocksize, hit_log=hit_log)
        controls = setup.controls(mixer, pools)
        engine = setup.audio_callback(mixer, controls, options.channel, recorder)
        stack.callback(player.close)   # before the pools go: the callback reads them
        midi = _start_player(player, engine, options, preset)
        if recorder is not None:
            hits = HitLogWriter(hit_log_path(options.record), hit_log, setup, player.blocksize, mixer_blocksize)
            _start_writer(stack, recorder, hits, options.record, player.rate)
        print(f"noisepad: {preset.name} on {player.label} at {player.rate} Hz, block {player.blocksize}; "
              f"MIDI in: {midi}; {cached} one-shots from the cache, {starters} from the starter pool. Ctrl-C stops.", file=sys.stderr, flush=True)
        keep = lambda: _write_keepers(controls, pools, setup, options.keep_dir)   # noqa: E731
        _status_loop(stop, player, engine, pools, supervisor, options.status_every, keep, setup.names)
        print(_summary(engine, pools, supervisor), file=sys.stderr, flush=True)
    if player.server_gone.is_set():
        print("noisepad: the JACK server stopped; the pools are saved", file=sys.stderr, flush=True)
        return 1
    return 0


def _open_player(options: PlayOptions, preset: Preset):
    """The JACK client or the PortAudio stream's setup; JACK by default when a server answers,
    unless a PortAudio device or a MIDI system other than JACK's was asked for."""
    wants_portaudio = options.device is not None or options.midi_api not in (None, "jack")
    audio = options.audio or ("portaudio" if wants_portaudio else None)
    if audio != "portaudio":
        from instrument.jack_audio import JackPlayer, open_client

        client = open_client()
        if client is not None:
            pads = [pad.name for pad in preset.pads] if options.outputs == "pads" else None
            player = JackPlayer(client, pads)
            if options.samplerate and options.samplerate != player.rate:
                player.close()
                raise InputError(None, f"the JACK server runs at {player.rate} Hz, not {options.samplerate}")
            return player
        if audio == "jack":
            raise InputError(None, "no JACK server answers (start jackd or PipeWire, or use --audio portaudio)")
    if options.outputs == "pads":
        raise InputError(None, "--outputs pads needs the JACK audio system")
    from instrument.portaudio_audio import PortAudioPlayer

    return PortAudioPlayer(options.device, options.samplerate, options.blocksize or preset.blocksize, preset)


def _start_player(player, engine: AudioCallback, options: PlayOptions, preset: Preset) -> str:
    """Start the audio; returns what the MIDI input is, for the start line."""
    wanted = options.midi_in or preset.midi_input
    virtual = options.virtual or preset.midi_virtual
    if hasattr(player, "follow_midi"):   # JACK: MIDI comes in on our own port
        sources = player.start(engine, wanted, virtual)
        port = f"{player.client.name}:midi_in"
        return f"{port} from {', '.join(sources)}" if sources else f"{port} (connect a MIDI output to it)"
    player.start(engine, wanted, virtual, options.midi_api)
    return "virtual port 'noisepad'" if virtual else wanted or "first port"


def _check_record_path(path: Path | None) -> None:
    if path is not None and not path.parent.is_dir():
        raise InputError(path, "folder for the recording does not exist")
    if path is not None and hit_log_path(path) == path:
        raise InputError(path, "a recording's name must not end in .hits.jsonl (that is its hit log's)")


def _start_writer(stack: ExitStack, recorder: Recorder, hits: HitLogWriter, path: Path, rate: int) -> None:
    """Writes the recording and its hit log on their own thread; the callback only copies into rings."""
    import soundfile

    done = threading.Event()
    handle = soundfile.SoundFile(str(path), "w", samplerate=rate, channels=2, subtype="PCM_24")
    written_to = os.stat(path).st_ino
    frames = 0

    def write() -> None:
        nonlocal frames
        try:
            while not done.wait(0.1):
                frames += _write_block(handle, recorder.take(), hits)
                if not _names_file(path, written_to):   # its folder was removed or it was replaced
                    print(f"\nnoisepad: recording to {path} stopped: the file or its folder went away; "
                          "the audio goes on", file=sys.stderr, flush=True)
                    return
            frames += _write_block(handle, recorder.take(), hits)
        except (OSError, RuntimeError) as error:   # disk full, file too large, device gone
            print(f"\nnoisepad: recording to {path} stopped ({error_line(error)}); what was written is kept "
                  "and the audio goes on", file=sys.stderr, flush=True)
        finally:
            for close in (handle.close, lambda: hits.close(frames, recorder.dropped)):
                try:
                    close()   # the WAV's header, so what is there plays; the log's last line
                except (OSError, RuntimeError):
                    pass

    thread = threading.Thread(target=write, name="noisepad-recorder", daemon=True)
    thread.start()
    stack.callback(thread.join)
    stack.callback(done.set)


def _names_file(path: Path, inode: int) -> bool:
    """Whether `path` still names the file we opened (Linux writes on into an unlinked one)."""
    try:
        return os.stat(path).st_ino == inode
    except OSError:
        return False


def _write_block(handle, block: np.ndarray, hits: HitLogWriter) -> int:
    handle.write(block)
    hits.drain()
    return len(block)


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


def _write_keepers(controls: ControlMap, pools: Pools, setup: RunSetup, folder: Path) -> list[str]:
    """The one-shots the keep button asked for since the last call; a line for each."""
    notices = []
    for p in np.flatnonzero(controls.keep_requests != controls.keeps_done):
        controls.keeps_done[p] = controls.keep_requests[p]
        name = setup.names[p]
        try:
            path = write_keeper(pools, int(p), name, setup.specs[p], folder)
        except (InputError, OSError) as error:
            notices.append(f"cannot keep {name}'s one-shot ({error_line(error)})")
            continue
        notices.append(f"kept {name}'s last one-shot as {path}" if path else f"{name} has played nothing to keep")
    return notices


def _status_loop(stop: threading.Event, player, engine: AudioCallback, pools: Pools, supervisor, every: float,
                 keep=list, names: list[str] = ()) -> None:
    gone = player.server_gone
    follow_midi = getattr(player, "follow_midi", list)   # JACK only: rtmidi does not see ports go
    started, ready = time.monotonic(), False
    with status_display(list(names)) as display:
        while not gone.is_set():
            for notice in follow_midi() + keep():
                display.say(f"noisepad: {notice}")
            if not ready and all(pools.available(p) > 0 for p in range(pools.pads)):
                ready = True
                display.say(f"noisepad: every pad ready after {time.monotonic() - started:.1f} s")
            display.update(engine, pools, supervisor)
            if stop.wait(every):
                return


def _summary(engine: AudioCallback, pools: Pools, supervisor) -> str:
    stats, pool = engine.stats(), pools.stats()
    fresh_hits = sum(pad.fresh_hits for pad in pool.pads)
    return (f"noisepad: stopped. hits {stats.hits}, fresh {fresh_hits} ({pool.fresh_hit_ratio:.0%}), empty {stats.empty}, "
            f"unmapped {stats.unmapped}, late {stats.late}, xruns {stats.xruns}, callbacks {stats.callbacks}, "
            f"callback p50 {stats.p50_ms:.3f} ms p99 {stats.p99_ms:.3f} ms longest {stats.longest_ms:.3f} ms, "
            f"over its block {stats.overruns}, note delay {stats.delay_ms:.2f} ms, "
            f"generated {pool.generated}, generator restarts {supervisor.restarts}")
