"""`play` through PortAudio (ALSA, CoreAudio, WASAPI, or PortAudio's own JACK host API), with
MIDI from python-rtmidi stamped on arrival and placed by the scheduler at a fixed delay."""

from __future__ import annotations

import threading

import sounddevice as sd

from engine.errors import InputError
from instrument.audio_callback import AudioCallback
from instrument.midi_in import compiled_apis, input_names, open_input
from instrument.preset import Preset
from instrument.run_setup import preset_rate


class StreamClock:
    """The audio stream's clock, for stamping MIDI arrivals; 0 until the stream runs."""

    stream = None

    def __call__(self) -> float:
        return 0.0 if self.stream is None else self.stream.time


class PortAudioPlayer:
    """An output stream on a PortAudio device and an rtmidi input feeding the scheduler."""

    def __init__(self, device_wanted, samplerate: int | None, blocksize: int, preset: Preset):
        self.device = _output_device(device_wanted if device_wanted is not None else preset.audio_device)
        self.rate = _samplerate(self.device, samplerate or preset.samplerate, preset)
        self.blocksize = blocksize
        self.label = self.device["name"]
        self.server_gone = threading.Event()   # PortAudio reports no such thing; never set
        self.stream = None
        self.port = None

    def start(self, engine: AudioCallback, midi_in: str | None, virtual: bool, midi_api: str | None) -> None:
        # MIDI before audio: python-rtmidi holds the GIL while it opens a JACK client, and
        # a running Python audio callback would then stall the JACK graph until it times out
        clock = StreamClock()
        self.port = open_input(engine.scheduler.queue, clock, midi_in, virtual, midi_api)
        try:
            self.stream = sd.OutputStream(device=self.device["index"], samplerate=self.rate, blocksize=self.blocksize,
                                          channels=2, dtype="float32", latency="low", callback=engine.callback)
            self.stream.start()
        except sd.PortAudioError as error:
            raise InputError(None, f"cannot open audio device '{self.label}' ({error})") from None
        clock.stream = self.stream

    def close(self) -> None:
        """Stop the audio, then the MIDI; a second call does nothing."""
        stream, port, self.stream, self.port = self.stream, self.port, None, None
        if stream is not None:
            stream.close()
        if port is not None:
            port.close_port()


def _output_device(wanted) -> dict:
    try:
        return sd.query_devices(wanted, "output")
    except (ValueError, sd.PortAudioError) as error:
        raise InputError(None, f"audio output device: {error}") from None


def _samplerate(device: dict, wanted: int | None, preset: Preset) -> int:
    """The rate asked for, else the model's if the device takes it, else the device's own."""
    model_rate = preset_rate(preset)
    for rate in ([wanted] if wanted else [model_rate, int(device["default_samplerate"])]):
        try:
            sd.check_output_settings(device=device["index"], samplerate=rate, channels=2, dtype="float32")
            return rate
        except (ValueError, sd.PortAudioError) as error:
            problem = error
    raise InputError(None, f"audio device '{device['name']}' cannot play at {wanted or model_rate} Hz ({problem})")


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
