"""Real audio files for dataset and training tests: synthetic drum hits and tiny Hydrogen kits."""

from __future__ import annotations

from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import soundfile


def hit(kind: str, rate: int = 44100, seconds: float = 0.3, channels: int = 1, seed: int = 0, silence: float = 0.0) -> np.ndarray:
    """(frames, channels) float32: a kick is a falling sine, a hat a burst of noise, a snare both."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    if kind == "kick":
        audio = np.sin(2 * np.pi * (50 + 100 * np.exp(-t * 30)) * t) * np.exp(-t * 8)
    elif kind == "hat":
        audio = rng.standard_normal(t.size) * np.exp(-t * 40) * 0.3
    else:
        audio = 0.5 * np.sin(2 * np.pi * 190 * t) * np.exp(-t * 20) + 0.3 * rng.standard_normal(t.size) * np.exp(-t * 15)
    audio = np.concatenate([np.zeros(int(silence * rate)), audio])
    return np.repeat(audio[:, None], channels, axis=1).astype(np.float32)


def write_hit(path: Path, kind: str, rate: int = 44100, channels: int = 1, seed: int = 0, silence: float = 0.0,
              subtype: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), hit(kind, rate, channels=channels, seed=seed, silence=silence), rate, subtype=subtype)
    return path


def write_class_folders(root: Path, per_class: int = 4, classes=("kick", "hat", "snare")) -> Path:
    """root/<class>/<n>.wav, a few hits per class with different seeds."""
    for kind in classes:
        for n in range(per_class):
            write_hit(root / kind / f"{n}.wav", kind, seed=n, channels=1 + n % 2)
    return root


LAYERED_INSTRUMENT = """  <instrument><id>{i}</id><name>{name}</name>
   <instrumentComponent><component_id>0</component_id>
{layers}
   </instrumentComponent>
  </instrument>"""
OLD_INSTRUMENT = """  <instrument><id>{i}</id><name>{name}</name>
{layers}
  </instrument>"""
FLAT_INSTRUMENT = """  <instrument><id>{i}</id><name>{name}</name><filename>{file}</filename></instrument>"""


def write_hydrogen_kit(folder: Path, name: str, instruments: dict[str, list[str]], format: str = "layered",
                       license: str | None = "GPL") -> Path:
    """A Hydrogen drumkit: drumkit.xml naming `instruments` {name: [sample files]}, in one of
    Hydrogen's formats: "layered" (1.x: instrumentComponent > layer, with a namespace), "layers"
    (0.9: layers straight in the instrument) or "flat" (0.9.3: one filename, no namespace)."""
    folder.mkdir(parents=True, exist_ok=True)
    blocks = []
    for i, (instrument, files) in enumerate(instruments.items()):
        if format == "flat":
            blocks.append(FLAT_INSTRUMENT.format(i=i, name=escape(instrument), file=escape(files[0])))
            continue
        layers = "\n".join(f"    <layer><filename>{escape(f)}</filename><min>0</min><max>1</max></layer>" for f in files)
        template = LAYERED_INSTRUMENT if format == "layered" else OLD_INSTRUMENT
        blocks.append(template.format(i=i, name=escape(instrument), layers=layers))
    license_line = f" <license>{escape(license)}</license>\n" if license else ""
    namespace = "" if format == "flat" else ' xmlns="http://www.hydrogen-music.org/drumkit"'
    (folder / "drumkit.xml").write_text(
        f'<?xml version="1.0" encoding="UTF-8"?>\n<drumkit_info{namespace}>\n'
        f" <name>{escape(name)}</name>\n{license_line} <instrumentList>\n" + "\n".join(blocks) + "\n </instrumentList>\n</drumkit_info>\n"
    )
    return folder
