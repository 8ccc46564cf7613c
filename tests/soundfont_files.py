"""Tiny SoundFont 2 files written from scratch (RIFF chunks as the SoundFont 2.04 spec lays them
out), for the dataset tests: real fonts that FluidSynth plays and sf2utils reads."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

KEY_RANGE, VELOCITY_RANGE, INSTRUMENT, SAMPLE_ID, ROOT_KEY = 43, 44, 41, 53, 58
RATE = 44100


@dataclass(frozen=True)
class Zone:
    """One sample on a range of keys and velocities."""
    keys: tuple[int, int]
    velocities: tuple[int, int]
    sample: np.ndarray              # float, mono


@dataclass(frozen=True)
class Preset:
    name: str
    bank: int
    program: int
    zones: tuple[Zone, ...]


def _chunk(tag: bytes, data: bytes) -> bytes:
    data += b"\0" * (len(data) % 2)   # SoundFont chunks (strings included) are of even size
    return tag + struct.pack("<I", len(data)) + data


def _list(kind: bytes, *chunks: bytes) -> bytes:
    return _chunk(b"LIST", kind + b"".join(chunks))


def _name(text: str) -> bytes:
    return text.encode()[:19].ljust(20, b"\0")


def _gen(operator: int, amount: int | tuple[int, int]) -> bytes:
    if isinstance(amount, tuple):
        return struct.pack("<HBB", operator, *amount)
    return struct.pack("<HH", operator, amount)


def write_soundfont(path: Path, presets: list[Preset], copyright: str = "") -> Path:
    """One instrument per preset; each zone's sample is stored 16-bit with the 46 zero
    samples the spec asks after each."""
    samples, shdr, smpl = [], b"", b""
    phdr = pbag = pgen = inst = ibag = igen = b""
    for p, preset in enumerate(presets):
        phdr += _name(preset.name) + struct.pack("<HHHIII", preset.program, preset.bank, p, 0, 0, 0)
        pbag += struct.pack("<HH", len(pgen) // 4, 0)
        pgen += _gen(INSTRUMENT, p)
        inst += _name(f"{preset.name} instrument") + struct.pack("<H", len(ibag) // 4)
        for zone in preset.zones:
            start = len(smpl) // 2
            pcm = np.round(np.clip(zone.sample, -1, 1) * 32767).astype("<i2")
            smpl += pcm.tobytes() + bytes(2 * 46)
            end = start + len(pcm)
            ibag += struct.pack("<HH", len(igen) // 4, 0)
            igen += _gen(KEY_RANGE, zone.keys) + _gen(VELOCITY_RANGE, zone.velocities)
            igen += _gen(ROOT_KEY, zone.keys[0]) + _gen(SAMPLE_ID, len(samples))
            shdr += _name(f"s{len(samples)}") + struct.pack("<IIIIIBbHH", start, end, start, end, RATE, 60, 0, 0, 1)
            samples.append(zone)
    phdr += _name("EOP") + struct.pack("<HHHIII", 0, 0, len(presets), 0, 0, 0)
    pbag += struct.pack("<HH", len(pgen) // 4, 0)
    pgen += bytes(4)
    inst += _name("EOI") + struct.pack("<H", len(ibag) // 4)
    ibag += struct.pack("<HH", len(igen) // 4, 0)
    igen += bytes(4)
    shdr += _name("EOS") + bytes(26)
    info = [_chunk(b"ifil", struct.pack("<HH", 2, 1)), _chunk(b"isng", b"EMU8000\0"), _chunk(b"INAM", b"tiny test font\0")]
    if copyright:
        info.append(_chunk(b"ICOP", copyright.encode() + b"\0"))
    body = b"sfbk" + _list(b"INFO", *info) + _list(b"sdta", _chunk(b"smpl", smpl)) + _list(
        b"pdta", _chunk(b"phdr", phdr), _chunk(b"pbag", pbag), _chunk(b"pmod", bytes(10)), _chunk(b"pgen", pgen),
        _chunk(b"inst", inst), _chunk(b"ibag", ibag), _chunk(b"imod", bytes(10)), _chunk(b"igen", igen),
        _chunk(b"shdr", shdr))
    path.write_bytes(_chunk(b"RIFF", body))
    return path


def tone(frequency: float, seconds: float = 0.3, decay: float = 10.0) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return 0.8 * np.sin(2 * np.pi * frequency * t) * np.exp(-t * decay)


def noise_burst(seconds: float = 0.2, seed: int = 0) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return 0.5 * np.random.default_rng(seed).standard_normal(t.size) * np.exp(-t * 25)
