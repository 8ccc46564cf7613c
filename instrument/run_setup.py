"""Everything a run needs, built from a preset at one sample rate.

A pad of a preset (`instrument.preset.Pad`) becomes, here and nowhere else, what each part
needs of it: the engine's `PadSpec` at the run's rate (what the generator fills, and the
pools' layout from it) and the mixer's `PadMix`. Live play (as a JACK client or through
PortAudio), `render` and `kit` all start from a `RunSetup`, so an offline render goes through
exactly the parts live play does: pools, mixer, controls and scheduler.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from engine.modelconfig import read_config
from engine.pads import PadSpec
from engine.plan import GeneratorConfig, pool_layout
from engine.pool import Pools
from instrument.audio_callback import AudioCallback, Recorder
from instrument.controls import ControlMap
from instrument.mixer import Mixer, PadMix
from instrument.preset import Preset
from instrument.scheduler import EventQueue, Scheduler


@dataclass(frozen=True)
class RunSetup:
    preset: Preset
    rate: int                        # of the run's audio: the device's, or the render's
    specs: tuple[PadSpec, ...]       # one per pad, at `rate`
    mixes: tuple[PadMix, ...]        # one per pad

    @property
    def names(self) -> list[str]:
        return [pad.name for pad in self.preset.pads]

    def create_pools(self) -> Pools:
        """Shared-memory pools laid out for the specs (a context manager)."""
        return Pools.create(pool_layout(list(self.specs)))

    def generator_config(self, pools: Pools, **options) -> GeneratorConfig:
        return GeneratorConfig(self.specs, pools.handle, **options)

    def mixer(self, pools: Pools, max_blocksize: int, **options) -> Mixer:
        return Mixer(pools, list(self.mixes), self.rate, max_blocksize, **options)

    def controls(self, mixer: Mixer, pools: Pools) -> ControlMap:
        return ControlMap(self.preset.controls, len(self.specs), mixer, pools)

    def scheduler(self, mixer: Mixer, controls: ControlMap, delay: float = 0.0) -> Scheduler:
        """Offline: events applied at the sample offsets they are given."""
        return Scheduler(EventQueue(), mixer, self.preset.note_to_pad, self.rate, delay=delay,
                         channel=self.preset.midi_channel, controls=controls)

    def audio_callback(self, mixer: Mixer, controls: ControlMap, channel: int | None = None,
                       recorder: Recorder | None = None) -> AudioCallback:
        """Live: `channel` (1-16) overrides the preset's MIDI channel."""
        return AudioCallback(mixer, EventQueue(), self.preset.note_to_pad, self.rate,
                             channel if channel is not None else self.preset.midi_channel, recorder, controls)


def setup_run(preset: Preset, rate: int | None = None, pool_sizes: list[int] | None = None) -> RunSetup:
    """`rate`: the audio device's (default: the preset's, else its first model's).
    `pool_sizes`: one-shots per pad instead of the preset's pool sizes."""
    rate = rate or preset_rate(preset)
    sizes = pool_sizes or [pad.spec.pool_size for pad in preset.pads]
    specs = tuple(replace(pad.spec, sample_rate=rate, pool_size=size) for pad, size in zip(preset.pads, sizes))
    return RunSetup(preset, rate, specs, tuple(pad_mixes(preset)))


def preset_rate(preset: Preset) -> int:
    """The rate a preset asks for, else its first model's."""
    return preset.samplerate or read_config(preset.pads[0].spec.model).sample_rate


def pad_mixes(preset: Preset) -> list[PadMix]:
    groups = sorted({pad.choke for pad in preset.pads if pad.choke is not None})
    return [
        PadMix(
            gain=10 ** (pad.gain_db / 20), pan=pad.pan, velocity_curve=pad.velocity_curve,
            choke=groups.index(pad.choke) if pad.choke is not None else -1,
            release_on_note_off=pad.release_on_note_off, velocity_spread=pad.velocity_spread,
        )
        for pad in preset.pads
    ]
