"""The JACK test server: it starts and stops, PortAudio sees it, MIDI and audio go through it.

Real jackd (dummy driver), real PortAudio, real rtmidi/mido; a few seconds in all.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.jacktest import JackMidiSender, JackRecorder, jack_server, jackd_installed

pytestmark = pytest.mark.skipif(not jackd_installed(), reason="jackd (Debian jackd2) is not installed")

ROOT = Path(__file__).resolve().parents[1]
JACK_HOST_API = "JACK Audio Connection Kit"


def run_python(code: str, env: dict, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def start_python(code: str, env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], env=env, cwd=ROOT, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_for_line(process: subprocess.Popen, expected: str) -> None:
    line = process.stdout.readline().strip()
    if line != expected:
        process.kill()
        raise AssertionError(f"expected {expected!r}, got {line!r}; stderr:\n{process.stderr.read()}")


# A stand-in for the instrument's MIDI input: a virtual JACK port "noisepad:noisepad" that
# prints every message it gets.
RTMIDI_LISTENER = """
    import sys, rtmidi
    port = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, name="noisepad")
    port.open_virtual_port("noisepad")
    port.set_callback(lambda event, data: print(*event[0], flush=True))
    print("ready", flush=True)
    sys.stdin.read()  # until the test closes stdin
    port.close_port()
    port.delete()  # python-rtmidi closes its JACK client here, not on `del`
"""


# --- the server ------------------------------------------------------------------------


def test_server_starts_serves_and_stops():
    with jack_server(rate=44100, period=128) as server:   # yields once jack_lsp answers
        assert server.running()
        assert (server.rate, server.period) == (44100, 128)
        assert server.env["JACK_DEFAULT_SERVER"] == server.name
        assert server.env["JACK_NO_START_SERVER"] == "1"
        assert server.ports() == ["system:capture_1", "system:capture_2", "system:playback_1", "system:playback_2"]
    assert server.process.returncode == 0  # stopped by SIGTERM, cleanly
    assert "caught signal 15" in server.log_text


def test_server_stops_when_the_body_fails():
    with pytest.raises(ZeroDivisionError):
        with jack_server() as server:
            1 / 0
    assert server.process.returncode is not None


def test_servers_with_different_names_are_independent():
    pytest.importorskip("rtmidi")
    with jack_server() as first, jack_server() as second:
        assert first.name != second.name
        listener = start_python(RTMIDI_LISTENER, first.env)  # a client of the first only
        try:
            wait_for_line(listener, "ready")
            assert "noisepad:noisepad" in first.ports()
            assert "noisepad:noisepad" not in second.ports()
        finally:
            listener.communicate(timeout=10)
    assert listener.returncode == 0, listener.stderr


def test_a_name_in_use_is_refused():
    with jack_server() as server:
        with pytest.raises(RuntimeError, match="already running"):
            with jack_server(name=server.name):
                pass
        assert server.running()


# --- PortAudio -------------------------------------------------------------------------

PORTAUDIO_PROBE = """
    import json, subprocess, time
    import sounddevice as sd

    apis = [api["name"] for api in sd.query_hostapis()]
    jack = sd.query_hostapis(apis.index("JACK Audio Connection Kit"))
    device = sd.query_devices(jack["default_output_device"])
    blocks = []

    def callback(outdata, frames, time_info, status):
        outdata.fill(0)
        blocks.append((frames, time_info.currentTime, time_info.outputBufferDacTime))

    with sd.OutputStream(device=device["index"], samplerate=device["default_samplerate"], blocksize=128,
                         channels=2, dtype="float32", callback=callback) as stream:
        time.sleep(0.3)
        last_block_time = blocks[-1][1]
        stream_time = stream.time
        connections = subprocess.run(["jack_lsp", "-c"], capture_output=True, text=True).stdout
    print(json.dumps(dict(apis=apis, device=device, blocks=blocks[:50], stream_time=stream_time,
                          last_block_time=last_block_time, connections=connections)))
"""


def test_portaudio_in_a_fresh_process_plays_through_jack():
    with jack_server() as server:
        result = run_python(PORTAUDIO_PROBE, server.env)
    assert result.returncode == 0, result.stderr
    probe = json.loads(result.stdout)
    assert JACK_HOST_API in probe["apis"]
    device = probe["device"]
    assert device["name"] == "system"
    assert device["max_output_channels"] == 2 and device["default_samplerate"] == 44100
    blocks = probe["blocks"]
    assert len(blocks) >= 20 and all(frames == 128 for frames, _, _ in blocks)
    # currentTime is jack_frame_time() when the callback runs: one block apart on average,
    # but jittery, and under load it can even step back
    steps = sorted(later[1] - earlier[1] for earlier, later in zip(blocks, blocks[1:]))
    assert abs(steps[len(steps) // 2] * 44100 - 128) < 32
    output_delay = {round((dac - now) * 44100) for _, now, dac in blocks}
    assert len(output_delay) == 1 and output_delay.pop() > 0  # a constant, in frames
    # stream.time, read from another thread, runs on the callback's clock
    assert abs(probe["stream_time"] - probe["last_block_time"]) < 3 * 128 / 44100
    assert "PortAudio:out_0\n   system:playback_1" in probe["connections"]  # auto-connected
    assert "PortAudio:out_1\n   system:playback_2" in probe["connections"]


IN_PROCESS_PROBE = """
    import json, time
    import sounddevice as sd  # initialised before the server exists
    from tests.jacktest import jack_server

    with jack_server() as server, server.in_process():
        during = [api["name"] for api in sd.query_hostapis()]
        with sd.OutputStream(device="system", samplerate=server.rate, blocksize=server.period,
                             channels=2, callback=lambda out, *_: out.fill(0)):
            time.sleep(0.1)
    after = [api["name"] for api in sd.query_hostapis()]
    print(json.dumps([during, after]))
"""


def test_in_process_portaudio_sees_the_server_and_exits_cleanly():
    # Without in_process(), PortAudio 19.6 aborts the process at exit (assertion in
    # pa_jack.c Terminate) when its JACK client outlived the server.
    result = run_python(IN_PROCESS_PROBE, dict(os.environ))
    assert result.returncode == 0, result.stderr
    during, after = json.loads(result.stdout)
    assert JACK_HOST_API in during
    assert JACK_HOST_API not in after


# --- MIDI ------------------------------------------------------------------------------




def test_a_note_reaches_a_jack_virtual_port():
    pytest.importorskip("rtmidi")
    pytest.importorskip("jack")
    with jack_server() as server:
        listener = start_python(RTMIDI_LISTENER, server.env)
        try:
            wait_for_line(listener, "ready")
            with JackMidiSender(server) as midi:
                midi.connect("noisepad:noisepad")
                midi.note_on(36, 100)
                midi.note_off(36)
                wait_for_line(listener, "144 36 100")
                wait_for_line(listener, "128 36 0")
                assert [message for _, message in midi.sent] == [[0x90, 36, 100], [0x80, 36, 0]]
                first, second = (frame for frame, _ in midi.sent)
                assert first % server.period == 0 and second % server.period == 0  # block starts
                assert 0 < second - first < server.rate
        finally:
            listener.communicate(timeout=10)
    assert listener.returncode == 0, listener.stderr


MIDO_LISTENER = """
    import sys, mido
    backend = mido.Backend("mido.backends.rtmidi/UNIX_JACK")
    port = backend.open_input("noisepad", virtual=True, client_name="noisepad",
                              callback=lambda message: print(message.type, message.note, flush=True))
    print("ready", flush=True)
    sys.stdin.read()  # until the test closes stdin
    port.close()
"""


def test_mido_virtual_input_in_another_process_gets_notes_at_exact_frames():
    pytest.importorskip("jack")
    with jack_server() as server:
        listener = start_python(MIDO_LISTENER, server.env)
        try:
            wait_for_line(listener, "ready")
            server.wait_for_port("noisepad:noisepad")
            with JackRecorder(server, channels=1) as rec:
                rec.connect_midi("noisepad:noisepad")
                at = rec.frame_time + server.rate // 20
                sent = rec.schedule_midi([(at, [0x90, 38, 90]), (at + 100, [0x80, 38, 0])])
                assert sent == [at, at + 100]
                wait_for_line(listener, "note_on 38")
                wait_for_line(listener, "note_off 38")
        finally:
            listener.communicate(timeout=10)
    assert listener.returncode == 0, listener.stderr


# --- audio out, recorded ---------------------------------------------------------------

# A trivial instrument: a note-on from a JACK MIDI port starts a click at the start of the
# next audio block. MIDI opens before audio starts and closes after it stops.
CLICK_INSTRUMENT = """
    import collections, sys
    import numpy as np, rtmidi, sounddevice as sd

    notes = collections.deque()
    midi = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, name="noisepad")
    midi.open_virtual_port("noisepad")
    midi.set_callback(lambda event, data: event[0][0] & 0xF0 == 0x90 and notes.append(event[0][2]))
    click = np.full(32, 0.5, np.float32)

    def callback(outdata, frames, time_info, status):
        outdata.fill(0)
        while notes:
            velocity = notes.popleft()
            outdata[:len(click), 0] = click * (velocity / 127)

    with sd.OutputStream(device="system", samplerate=44100, blocksize=128, channels=2,
                         dtype="float32", callback=callback):
        print("ready", flush=True)
        sys.stdin.read()
    midi.close_port()
    midi.delete()
"""


def test_recorded_click_follows_the_note_within_two_blocks():
    pytest.importorskip("jack")
    with jack_server() as server:
        instrument = start_python(CLICK_INSTRUMENT, server.env)
        try:
            wait_for_line(instrument, "ready")
            server.wait_for_port("PortAudio:out_0")
            with JackRecorder(server, channels=2) as rec:
                rec.connect("PortAudio:out_0", "PortAudio:out_1")
                rec.connect_midi("noisepad:noisepad")
                latencies = []
                for step in range(8):
                    at = rec.frame_time + 2000 + 37 * step  # different places within a block
                    sent = rec.send_midi([0x90, 36, 127], at=at)
                    rec.wait_until(sent + 4 * server.period)
                    onset = rec.first_onset(after=sent)
                    assert onset is not None, f"no click after the note at {sent}"
                    latencies.append(onset - sent)
                    block = rec.audio(onset, onset + 32)
                    assert abs(block[:, 0] - 0.5).max() < 1e-6 and not block[:, 1].any()
                print("note-to-onset latency, frames:", latencies, "gaps:", rec.gaps, "xruns:", server.xruns())
        finally:
            instrument.communicate(timeout=10)
    assert instrument.returncode == 0, instrument.stderr
    assert all(0 <= latency <= 2 * server.period for latency in latencies)
