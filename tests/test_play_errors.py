"""`noisepad play` with a port or device that is not there: one line, exit 2, nothing left running."""

import subprocess
import sys

import pytest

from tests.jacktest import jack_server, jackd_installed
from tests.tiny_models import write_kit_preset


def noisepad(*args, env=None, timeout=120):
    return subprocess.run([sys.executable, "-m", "noisepad_cli", *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=timeout)


@pytest.fixture
def preset(tmp_path, kit_model_file):
    return write_kit_preset(tmp_path / "kit.yaml", kit_model_file, {"kick": "notes: [36], class: kick, steps: 2"})


def one_line(result):
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def test_missing_audio_device(preset, tmp_path):
    line = one_line(noisepad("play", "--preset", preset, "--device", "no-such-device", "--cache", tmp_path / "c"))
    assert "audio output device" in line and "no-such-device" in line


def test_broken_preset(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("pads:\n  kick: {notes: [36], model: nothing}\n")
    line = one_line(noisepad("play", "--preset", path))
    assert line.startswith(f"noisepad play: {path}:2: pads.kick.model")


@pytest.mark.skipif(not jackd_installed(), reason="needs jackd (Debian jackd2)")
def test_missing_midi_port(preset, tmp_path):
    with jack_server() as server:
        result = noisepad("play", "--preset", preset, "--device", "JACK", "--midi-api", "jack",
                          "--midi-in", "no-such-port", "--cache", tmp_path / "c", env=server.env)
    line = one_line(result)
    assert "no MIDI input" in line  # none at all on a fresh server; with ports, it lists them
