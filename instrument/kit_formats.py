"""Kit files for other samplers: SFZ and a Hydrogen drumkit, from a kit's pads and one-shots.

What each format can carry of a pad: SFZ takes round robin (`seq_length`/`seq_position`), the
choke group (`group`/`off_by`, a 5 ms fade as noisepad's), the velocity curve (`amp_velcurve_N`
points), gain, pan and each one-shot's tuning. Hydrogen takes the one-shots as layers of one
instrument, picked at random, its mute group, gain, pan and tuning per layer; its velocity is
always linear.
"""

from __future__ import annotations

import tarfile
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path

from engine.outfile import replacing
from instrument.mixer import FADE_MS
from instrument.preset import Pad
from instrument.velocity import CURVES

HYDROGEN_NAMESPACE = "http://www.hydrogen-music.org/drumkit"
CURVE_POINTS = (1, 8, 16, 24, 32, 40, 48, 56, 64, 72, 80, 88, 96, 104, 112, 120, 127)


@dataclass(frozen=True)
class KitPad:
    """A pad as a kit holds it: the preset's pad and its one-shots' files and tunings."""

    pad: Pad
    choke_group: int       # 1, 2, ... for pads that choke each other; 0 for none
    files: list[str]       # relative to the kit's sample folder
    tunes: list[float]     # semitones, per file


def write_sfz(path: Path, title: str, pads: list[KitPad], samples: str) -> Path:
    lines = [f"// {title}: {len(pads[0].files)} noisepad one-shots per pad, played round robin",
             f"<control> default_path={samples}/", ""]
    for kit_pad in pads:
        for note in kit_pad.pad.notes:
            lines += [f"// {kit_pad.pad.name}", _sfz_group(kit_pad, note)]
            lines += [_sfz_region(file, i, tune) for i, (file, tune) in enumerate(zip(kit_pad.files, kit_pad.tunes), 1)]
            lines.append("")
    with replacing(path, commit=True) as temp:
        Path(temp).write_text("\n".join(lines))
    return path


def _sfz_group(kit_pad: KitPad, note: int) -> str:
    pad = kit_pad.pad
    opcodes = [f"key={note}", f"seq_length={len(kit_pad.files)}", f"volume={pad.gain_db:g}", f"pan={100 * pad.pan:g}"]
    exponent = CURVES[pad.velocity_curve] if isinstance(pad.velocity_curve, str) else float(pad.velocity_curve)
    if exponent == 0:
        opcodes.append("amp_veltrack=0")
    else:
        opcodes.append("amp_veltrack=100")
        opcodes += [f"amp_velcurve_{v}={(v / 127) ** exponent:.4f}" for v in CURVE_POINTS]
    if kit_pad.choke_group:
        group = kit_pad.choke_group
        opcodes += [f"group={group}", f"off_by={group}", "off_mode=time", f"off_time={FADE_MS / 1000:g}"]
    opcodes.append(f"ampeg_release={FADE_MS / 1000:g}" if pad.release_on_note_off else "loop_mode=one_shot")
    return "<group> " + " ".join(opcodes)


def _sfz_region(file: str, position: int, tune: float) -> str:
    cents = round(100 * tune)
    transpose = round(cents / 100)
    return f"<region> seq_position={position} transpose={transpose} tune={cents - 100 * transpose} sample={file}"


def write_hydrogen(folder: Path, name: str, title: str, pads: list[KitPad], kit_folder: Path) -> Path:
    """drumkit.xml in `kit_folder`, then the folder packed as NAME.h2drumkit in `folder`."""
    ElementTree.register_namespace("", HYDROGEN_NAMESPACE)
    root = _element("drumkit_info", name=name, author="noisepad", info=f"{title}: one-shots made by noisepad",
                    license="as the model the one-shots were made with", image="", imageLicense="")
    components = _sub(root, "componentList")
    components.append(_element("drumkitComponent", id=0, name="Main", volume=1))
    instruments = _sub(root, "instrumentList")
    for index, kit_pad in enumerate(pads):
        instruments.append(_hydrogen_instrument(index, kit_pad))
    ElementTree.indent(root)
    with replacing(kit_folder / "drumkit.xml", commit=True) as temp:
        ElementTree.ElementTree(root).write(temp, encoding="UTF-8", xml_declaration=True)
    packed = folder / f"{name}.h2drumkit"
    with replacing(packed, commit=True) as temp:
        with tarfile.open(temp, "w:gz") as archive:
            archive.add(kit_folder, arcname=name)
    return packed


def _hydrogen_instrument(index: int, kit_pad: KitPad) -> ElementTree.Element:
    pad = kit_pad.pad
    instrument = _element(
        "instrument", id=index, name=pad.name, volume=1, isMuted="false", isSoloed="false", pan=f"{pad.pan:g}",
        pitchOffset=0, randomPitchFactor=0, gain=f"{10 ** (pad.gain_db / 20):.6g}",
        applyVelocity="false" if pad.velocity_curve == "fixed" else "true", filterActive="false",
        filterCutoff=1, filterResonance=0, Attack=0, Decay=0, Sustain=1,
        Release=round(FADE_MS * 44.1) if pad.release_on_note_off else 1000,
        muteGroup=kit_pad.choke_group - 1, midiOutChannel=-1, midiOutNote=pad.notes[0], isStopNote="false",
        sampleSelectionAlgo="RANDOM", isHihat=-1, lower_cc=0, higher_cc=127,
    )
    component = _sub(instrument, "instrumentComponent")
    component.extend([_element("component_id", text=0), _element("gain", text=1)])
    for file, tune in zip(kit_pad.files, kit_pad.tunes):
        component.append(_element("layer", filename=file, min=0, max=1, gain=1, pitch=f"{tune:.4f}"))
    return instrument


def _element(tag: str, text=None, **children) -> ElementTree.Element:
    """<tag>text</tag>, or <tag> with a child <key>value</key> per keyword, in order."""
    element = ElementTree.Element(f"{{{HYDROGEN_NAMESPACE}}}{tag}")
    if text is not None:
        element.text = str(text)
    for key, value in children.items():
        _sub(element, key).text = str(value)
    return element


def _sub(parent: ElementTree.Element, tag: str) -> ElementTree.Element:
    return ElementTree.SubElement(parent, f"{{{HYDROGEN_NAMESPACE}}}{tag}")
