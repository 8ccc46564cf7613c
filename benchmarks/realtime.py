"""Real-time figures: callback cost by voices and block size; a long JACK run's xruns and latency.

    python -m benchmarks.realtime cost                  # callback cost, 1-64 voices, blocks 64/128/256
    python -m benchmarks.realtime cost --against OLD.py # the same, side by side with another mixer.py
                                                        # (e.g. `git show REV:instrument/mixer.py > OLD.py`)
    python -m benchmarks.realtime hitlog                # the same with a hit every block, hit log off/on
    python -m benchmarks.realtime soak --seconds 600    # JACK dummy server, 20 notes/s, generator busy
                                                        # (--realtime: jackd -R, where the machine allows it)
                                                        # (--audio portaudio: through PortAudio and rtmidi)
    python -m benchmarks.realtime startup               # default kit, empty cache: seconds until every pad sounds

`soak` runs `noisepad play --virtual` on a private JACK dummy server (jackd2) with a
default-architecture model (random weights: the generator's CPU load is what matters), small
pools so that the generator refills all the time, sends 20 notes/s from a JACK MIDI client
(at exact frames to the JACK client; through python-rtmidi, paced by the clock, to the
PortAudio path), records the output and reports xruns, callback times and note-to-onset
latency and jitter.
Prints Markdown for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from engine.pool import PadLayout, Pools
from instrument.hitlog import HitLog
from instrument.audio_callback import AudioCallback
from instrument.mixer import Mixer, PadMix
from instrument.scheduler import EventQueue

RATE = 44100
SHOT_FRAMES = 32768


def callback_cost(voices: int, blocksize: int, blocks: int = 400, hit_every_block: bool = False,
                  logged: bool = False, mixer_class=Mixer) -> tuple[float, float]:
    """Median and p99 of the callback's duration (ms) with `voices` voices sounding; with
    `hit_every_block`, a note-on in every block, applied inside the timed callback (as a JACK
    client applies its MIDI), written to a hit log when `logged`."""
    pads = 8
    rng = np.random.default_rng(0)
    with Pools.create([PadLayout(12, 2, SHOT_FRAMES)] * pads) as pools:
        for p in range(pads):
            for s in range(12):
                shot = (rng.standard_normal((2, SHOT_FRAMES)) * 0.05).astype(np.float32)
                shot[:, -1] = 0
                pools.preload(p, shot, s, fresh=True)
        mixer = mixer_class(pools, [PadMix(0.5, 0.0)] * pads, RATE, blocksize, hit_log=HitLog(pools) if logged else None)
        engine = AudioCallback(mixer, EventQueue(), [i % pads for i in range(128)], RATE)
        out = np.zeros((blocksize, 2), np.float32)
        durations = []
        for block in range(blocks):
            while mixer.voices < voices:   # keep the count up as voices end
                mixer.note_on(int(rng.integers(pads)), 100, 0)
            info = SimpleNamespace(outputBufferDacTime=block * blocksize / RATE, currentTime=block * blocksize / RATE)
            started = time.perf_counter()
            if hit_every_block:
                engine.scheduler.apply(0x90, int(rng.integers(pads)), 100, int(rng.integers(blocksize)))
                if logged:
                    mixer.hit_log.read = mixer.hit_log.written   # as the writer thread drains it
            engine.callback(out, blocksize, info, None)
            durations.append(time.perf_counter() - started)
        durations = np.array(durations[20:]) * 1000
        return float(np.median(durations)), float(np.percentile(durations, 99))


def cost_table() -> str:
    rows = ["| voices | " + " | ".join(f"block {b}: p50 / p99 ms (budget {b / RATE * 1000:.2f})" for b in (64, 128, 256)) + " |",
            "|---|---|---|---|"]
    for voices in (1, 8, 16, 32, 64):
        cells = []
        for blocksize in (64, 128, 256):
            p50, p99 = callback_cost(voices, blocksize)
            cells.append(f"{p50:.3f} / {p99:.3f}")
        rows.append(f"| {voices} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def cost_against_table(path: Path, runs: int = 5) -> str:
    """Callback cost of this mixer and of the mixer.py at `path`, alternating runs (medians)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("other_mixer", path)
    other = importlib.util.module_from_spec(spec)
    sys.modules["other_mixer"] = other
    spec.loader.exec_module(other)
    rows = [f"| voices, block | {path.name}: p50 / p99 ms | this mixer: p50 / p99 ms | p50 / p99 ratio |",
            "|---|---|---|---|"]
    for blocksize in (64, 128, 256):
        for voices in (1, 8, 16, 32, 64):
            theirs, ours = [], []
            for _ in range(runs):
                theirs.append(callback_cost(voices, blocksize, mixer_class=other.Mixer))
                ours.append(callback_cost(voices, blocksize))
            (t50, t99), (o50, o99) = np.median(theirs, axis=0), np.median(ours, axis=0)
            rows.append(f"| {voices}, {blocksize} | {t50:.3f} / {t99:.3f} | {o50:.3f} / {o99:.3f} | "
                        f"{o50 / t50:.2f} / {o99 / t99:.2f} |")
    return "\n".join(rows)


def hit_log_table(runs: int = 5) -> str:
    """Callback cost with a hit in every block, hit log off and on, alternating runs."""
    rows = ["| voices, block 128 | hit log off: p50 / p99 ms | hit log on: p50 / p99 ms | p99 on/off |", "|---|---|---|---|"]
    for voices in (8, 64):
        off, on = [], []
        for _ in range(runs):
            off.append(callback_cost(voices, 128, hit_every_block=True))
            on.append(callback_cost(voices, 128, hit_every_block=True, logged=True))
        (off50, off99), (on50, on99) = np.median(off, axis=0), np.median(on, axis=0)
        rows.append(f"| {voices} | {off50:.3f} / {off99:.3f} | {on50:.3f} / {on99:.3f} | {on99 / off99:.2f} |")
    return "\n".join(rows)


def soak(seconds: float, notes_per_second: float, audio: str = "jack", realtime: bool = False) -> str:
    """`noisepad play` on a JACK dummy server as a JACK client of its own (`audio` "jack": notes
    sent at exact frames by a JACK-Client sender) or through PortAudio and python-rtmidi.
    `realtime`: jackd -R, so its clients' process threads run SCHED_FIFO (needs the right to)."""
    from tests.jacktest import JackMidiSender, JackRecorder, jack_server

    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        preset = _soak_preset(folder)
        with jack_server(rate=RATE, period=128, realtime=realtime) as server:
            sender = JackRecorder(server, channels=0, name="keys") if audio == "jack" else JackMidiSender(server)
            play = _start_play(server, preset, folder, audio)
            try:
                _wait_for(folder / "play.log", "every pad ready", play, timeout=600)
                midi_in, outs = (("noisepad:midi_in", ("noisepad:out_L", "noisepad:out_R")) if audio == "jack"
                                 else ("noisepad:noisepad", ("PortAudio:out_0", "PortAudio:out_1")))
                server.wait_for_port(midi_in)
                with JackRecorder(server, channels=2, seconds=seconds + 10, midi=False) as recorder:
                    recorder.connect(*outs)
                    sender.connect_midi(midi_in) if audio == "jack" else sender.connect(midi_in)
                    xruns_before, cpu_before = server.xruns(), _cpu_seconds(play.pid)
                    frames = _send_notes(sender, seconds, notes_per_second, exact=audio == "jack")
                    recorder.wait_until(frames[-1] + RATE // 4, timeout=30)
                    cpu = {name: used - cpu_before.get(name, 0.0) for name, used in _cpu_seconds(play.pid).items()}
                    latencies = _latencies(recorder, frames)
                    server_xruns = server.xruns() - xruns_before
            finally:
                sender.close()   # before noisepad goes: closing a sender whose peer is gone stalls
                summary = _stop_play(play, folder / "play.log")
    return _soak_report(seconds, notes_per_second, latencies, server_xruns, summary, audio, realtime, cpu)


def _soak_preset(folder: Path) -> Path:
    import torch
    import yaml

    from engine.modelconfig import ModelConfig
    from engine.modelfile import DrumDiffusion, save_model

    configs = Path(__file__).resolve().parent.parent / "training" / "configs"
    data = yaml.safe_load((configs / "default.yaml").read_text())["model"]
    unet = dict(data["unet"], use_embedding_cfg=True, embedding_features=64, embedding_max_length=1,
                cross_attentions=[0, 0, 0, 0, 0, 1, 1, 1])
    config = ModelConfig.from_dict(dict(data, unet=unet, classes=["kick", "snare", "hat"], data_scale=1.0))
    torch.manual_seed(0)
    save_model(DrumDiffusion(config), folder / "kit.safetensors")
    (folder / "kit.yaml").write_text(
        "models:\n  kit: {path: kit.safetensors}\npads:\n"
        "  kick: {notes: [36], model: kit, class: kick, steps: 8, pool: 4, pan: 1}\n"
        "  snare: {notes: [38], model: kit, class: snare, steps: 8, pool: 4, pan: 1}\n"
        "  hat: {notes: [42], model: kit, class: hat, steps: 8, pool: 4, pan: 1}\n"
        "  probe: {notes: [37], model: kit, class: hat, steps: 8, pool: 4, pan: -1, decay: 0.05}\n")
    return folder / "kit.yaml"


def _start_play(server, preset: Path, folder: Path, audio: str) -> subprocess.Popen:
    backend = (["--audio", "jack"] if audio == "jack"
               else ["--audio", "portaudio", "--midi-api", "jack", "--device", "JACK", "--blocksize", "128"])
    command = [sys.executable, "-m", "noisepad_cli", "play", "--virtual", *backend,
               "--preset", str(preset), "--cache", str(folder / "cache"), "--generator-device", "cpu"]
    log = open(folder / "play.log", "w")
    return subprocess.Popen(command, env=dict(server.env, PYTHONUNBUFFERED="1"), stdout=log, stderr=subprocess.STDOUT)


def _wait_for(log: Path, text: str, process: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while text not in log.read_text():
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"noisepad play did not get ready:\n{log.read_text()}")
        time.sleep(0.1)


def _stop_play(process: subprocess.Popen, log: Path) -> str:
    process.send_signal(2)
    process.wait(60)
    return log.read_text()


PROBE_EVERY = 10   # every 10th note is a probe: a short hit alone on the left channel


def _send_notes(sender, seconds: float, rate: float, exact: bool) -> list[int]:
    """Frames at which each note entered the JACK graph. `exact`: the sender is a JackRecorder
    that writes each note at a chosen frame; else a python-rtmidi sender, paced by the clock."""
    rng = np.random.default_rng(1)
    notes = [(37 if i % PROBE_EVERY == 0 else int(rng.choice([36, 38, 42])), int(rng.integers(60, 128)))
             for i in range(int(seconds * rate))]
    offsets = [int((i + rng.uniform(0, 0.3)) * RATE / rate) for i in range(len(notes))]
    if exact:
        start = sender.frame_time + RATE // 2
        return sender.schedule_midi([(start + offset, [0x99, note, velocity])
                                     for offset, (note, velocity) in zip(offsets, notes)], timeout=seconds + 30)
    start = time.monotonic()
    frames = []
    for offset, (note, velocity) in zip(offsets, notes):
        time.sleep(max(0.0, start + offset / RATE - time.monotonic()))
        frames.append(sender.note_on(note, velocity, channel=9))
    return frames


def _latencies(recorder, frames: list[int]) -> np.ndarray:
    """Onset on the left channel (probes only) after each probe note."""
    found = []
    for frame in frames[::PROBE_EVERY]:
        left = recorder.audio(frame, frame + RATE // 4)[:, 0]
        loud = np.flatnonzero(np.abs(left) > 1e-3)
        if len(loud) and np.abs(recorder.audio(frame - 8, frame)[:, 0]).max() < 1e-3:
            found.append(int(loud[0]))
    return np.array(found)


def _cpu_seconds(pid: int) -> dict[str, float]:
    """CPU time (user + system, s) of `play`, of its generator process and of its other
    children (multiprocessing's resource tracker), read from Linux's /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    used = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue   # it ended meanwhile
        own, parent = int(stat.parent.name), int(fields[1])
        if own == pid or parent == pid:
            name = "play" if own == pid else ("generator" if "spawn_main" in cmdline else "its other children")
            used[name] = used.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / ticks
    return used


def _soak_report(seconds, rate, latencies, server_xruns, summary, audio, realtime, cpu) -> str:
    line = next((l for l in summary.splitlines() if "stopped" in l), summary[-400:])
    fields = dict(re.findall(r"(xruns|hits|late|empty|generated|callbacks) (\d+)", line))
    p50 = re.search(r"callback p50 ([\d.]+) ms p99 ([\d.]+) ms longest ([\d.]+) ms, over its block (\d+)", line)
    ms = latencies / RATE * 1000
    return "\n".join([
        f"| soak ({audio}, jackd {'realtime' if realtime else 'not realtime'}), {seconds:.0f} s at {rate:g} notes/s, "
        "block 128 | value |", "|---|---|",
        f"| xruns seen by the callback | {fields.get('xruns')} |",
        f"| xruns logged by jackd | {server_xruns} |",
        f"| callbacks | {fields.get('callbacks')} |",
        *((f"| callback p50 / p99 / longest | {p50.group(1)} / {p50.group(2)} / {p50.group(3)} ms |",
           f"| callbacks longer than their block (the callback's own xruns) | {p50.group(4)} |") if p50
          else ("| callback | ? |",)),
        f"| hits / empty pool / late | {fields.get('hits')} / {fields.get('empty')} / {fields.get('late')} |",
        f"| one-shots generated during the run | {fields.get('generated')} |",
        *(f"| CPU time of {name} during the run | {used:.0f} s ({used / seconds:.0%} of a core) |"
          for name, used in sorted(cpu.items())),
        f"| notes measured (onset over silence) | {len(ms)} |",
        f"| note-to-onset latency median | {np.median(ms):.2f} ms |",
        f"| jitter: sd / p95 abs. deviation / max abs. deviation | {ms.std():.3f} / "
        f"{np.percentile(np.abs(ms - np.median(ms)), 95):.3f} / {np.abs(ms - np.median(ms)).max():.3f} ms |",
    ])


def startup(runs: int = 3) -> str:
    """Seconds from launching `noisepad play` (default kit, an empty cache) to its line saying
    every pad holds a one-shot: with the shipped starter pool, and with the same model alone."""
    import shutil

    from tests.jacktest import jack_server

    model = Path(__file__).resolve().parent.parent / "presets" / "models" / "default.safetensors"
    rows = ["| default kit, empty cache | launch to every pad sounding (median) | runs |", "|---|---|---|"]
    with tempfile.TemporaryDirectory() as folder, jack_server(rate=RATE, period=128) as server:
        folder = Path(folder)
        (folder / "bare").mkdir()
        shutil.copy(model, folder / "bare" / model.name)   # no starter beside this copy
        default = (Path(__file__).resolve().parent.parent / "presets" / "default.yaml").read_text()
        (folder / "bare" / "kit.yaml").write_text(default.replace("models/default.safetensors", model.name))
        cases = (("with the starter pool", None, runs), ("without it (the model alone)", folder / "bare" / "kit.yaml", 1))
        for case, (label, preset, count) in enumerate(cases):
            seconds = [_time_to_ready(server, preset, folder / f"run{case}-{i}") for i in range(count)]
            rows.append(f"| {label} | {np.median(seconds):.2f} s | {count} |")
    return "\n".join(rows)


def _time_to_ready(server, preset: Path | None, folder: Path) -> float:
    """Launch `noisepad play` with folder/cache (empty if new) until every pad sounds."""
    folder.mkdir(exist_ok=True)
    command = [sys.executable, "-m", "noisepad_cli", "play", "--audio", "jack", "--virtual",
               "--cache", str(folder / "cache"), "--generator-device", "cpu"] + (["--preset", str(preset)] if preset else [])
    log = folder / "play.log"
    started = time.monotonic()
    with open(log, "w") as out:
        process = subprocess.Popen(command, env=dict(server.env, PYTHONUNBUFFERED="1"), stdout=out, stderr=subprocess.STDOUT)
    try:
        while "every pad ready" not in log.read_text():
            if process.poll() is not None:
                raise RuntimeError(f"noisepad play ended:\n{log.read_text()}")
            time.sleep(0.01)
        return time.monotonic() - started
    finally:
        _stop_play(process, log)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["cost", "hitlog", "soak", "startup"])
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--notes-per-second", type=float, default=20)
    parser.add_argument("--audio", choices=["jack", "portaudio"], default="jack", help="soak: play's audio system")
    parser.add_argument("--realtime", action="store_true", help="soak: jackd in realtime mode (-R)")
    parser.add_argument("--against", type=Path, help="cost: another mixer.py to compare with, side by side")
    args = parser.parse_args()
    print(f"Machine: {platform.machine()} {platform.processor()}, Python {platform.python_version()}, "
          f"numpy {np.__version__}\n")
    if args.what == "cost":
        print(cost_against_table(args.against) if args.against else cost_table())
    elif args.what == "hitlog":
        print(hit_log_table())
    elif args.what == "startup":
        print(startup())
    else:
        print(soak(args.seconds, args.notes_per_second, args.audio, args.realtime))


if __name__ == "__main__":
    main()
