"""Presets: YAML files that map MIDI notes to pads and pads to models.

Every problem is reported with the file, the line and the key, e.g.
`kit.yaml:12: pads.snare.pan: must be a number from -1 to 1, not 'left'`.
Paths inside a preset are relative to the preset file.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml

from engine.errors import InputError
from engine.modelconfig import read_config
from engine.pads import PadSpec
from engine.settings import SAMPLERS, SCHEDULES, Settings, model_settings
from instrument.controls import BUTTONS, DEFAULT_RANGES, KNOBS, Control
from instrument.velocity import CURVES

DEFAULT_PRESET = Path(__file__).resolve().parent.parent / "presets" / "default.yaml"
TOP_KEYS = {"name", "models", "pads", "controls", "midi", "audio"}
PAD_KEYS = {
    "notes", "model", "class", "pool", "steps", "sampler", "schedule", "guidance", "variation",
    "gain_db", "pan", "tune", "decay", "velocity_curve", "choke", "release_on_note_off", "humanize",
}
MIDI_KEYS = {"input", "channel", "virtual"}
AUDIO_KEYS = {"device", "blocksize", "samplerate"}
CONTROL_KEYS = {"cc", "note", "knob", "button", "pad", "range"}


@dataclass(frozen=True)
class Pad:
    """A pad as the instrument plays it; `spec` is what the engine needs to fill its pool."""

    name: str
    notes: tuple[int, ...]
    spec: PadSpec
    gain_db: float = 0.0
    pan: float = 0.0
    velocity_curve: str | float = "linear"
    choke: str | None = None
    release_on_note_off: bool = False
    velocity_spread: int = 0


@dataclass(frozen=True)
class Preset:
    path: Path
    name: str
    pads: tuple[Pad, ...]
    midi_input: str | None = None
    midi_channel: int | None = None     # 1-16; None: all channels
    midi_virtual: bool = False
    audio_device: str | int | None = None
    blocksize: int = 128
    samplerate: int | None = None
    note_to_pad: tuple[int, ...] = field(default=())   # 128 entries: pad index, or -1
    controls: tuple[Control, ...] = ()

    def pad(self, name: str) -> Pad:
        for pad in self.pads:
            if pad.name == name:
                return pad
        raise InputError(self.path, f"no pad '{name}' (pads: {', '.join(p.name for p in self.pads)})")


class _Reader:
    """Walks PyYAML's node tree, so that each value still knows its line."""

    def __init__(self, path: Path):
        self.path = path

    def fail(self, node: yaml.Node | None, key: str, problem: str):
        line = f":{node.start_mark.line + 1}" if node is not None else ""
        raise InputError(None, f"{self.path}{line}: {key}: {problem}")

    def mapping(self, node: yaml.Node, key: str, allowed: set[str] | None = None) -> dict[str, yaml.Node]:
        if not isinstance(node, yaml.MappingNode):
            self.fail(node, key, "must be a mapping of keys to values")
        out: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            name = str(key_node.value)
            where = f"{key}.{name}" if key else name
            if allowed is not None and name not in allowed:
                self.fail(key_node, where, f"unknown key (expected one of {', '.join(sorted(allowed))})")
            if name in out:
                self.fail(key_node, where, "given twice")
            out[name] = value_node
        return out

    def scalar(self, node: yaml.Node, key: str):
        if not isinstance(node, yaml.ScalarNode):
            self.fail(node, key, "must be a single value")
        return yaml.safe_load(yaml.serialize(node))

    def number(self, node, key, low=None, high=None, integer=False, allow_null=False):
        value = self.scalar(node, key)
        if value is None and allow_null:
            return None
        kinds = (int,) if integer else (int, float)
        ok = isinstance(value, kinds) and not isinstance(value, bool)
        ok = ok and (low is None or value >= low) and (high is None or value <= high)
        if not ok:
            what = "a whole number" if integer else "a number"
            bounds = f" from {low} to {high}" if low is not None and high is not None else (f" of at least {low}" if low is not None else "")
            self.fail(node, key, f"must be {what}{bounds}, not {value!r}")
        return value

    def text(self, node, key, allow_null=False, choices=None):
        value = self.scalar(node, key)
        if value is None and allow_null:
            return None
        if not isinstance(value, str) or (choices is not None and value not in choices):
            hint = f" (one of {', '.join(choices)})" if choices else ""
            self.fail(node, key, f"must be a name{hint}, not {value!r}")
        return value

    def boolean(self, node, key):
        value = self.scalar(node, key)
        if not isinstance(value, bool):
            self.fail(node, key, f"must be true or false, not {value!r}")
        return value

    def file(self, node, key) -> Path:
        value = self.text(node, key)
        path = (self.path.parent / value).resolve()
        if not path.is_file():
            self.fail(node, key, f"file not found: {path}")
        return path


def load_preset(path: str | Path | None = None) -> Preset:
    """Read and validate a preset. Its pads' specs are at the preset's own rate (None: the
    model's); a run sets the device's (`instrument.run_setup`)."""
    path = Path(path) if path is not None else DEFAULT_PRESET
    try:
        root = yaml.compose(path.read_text())
    except FileNotFoundError:
        raise InputError(path, "preset not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(path, f"cannot read preset ({error})") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        raise InputError(None, f"{path}{line}: not valid YAML ({getattr(error, 'problem', error)})") from None
    reader = _Reader(path)
    if root is None:
        reader.fail(None, "preset", "file is empty")
    top = reader.mapping(root, "", TOP_KEYS)
    if "pads" not in top:
        reader.fail(root, "pads", "missing: a preset needs at least one pad")
    models = _read_models(reader, top.get("models"))
    midi = reader.mapping(top["midi"], "midi", MIDI_KEYS) if "midi" in top else {}
    audio = reader.mapping(top["audio"], "audio", AUDIO_KEYS) if "audio" in top else {}
    rate = reader.number(audio["samplerate"], "audio.samplerate", 8000, 384000, integer=True, allow_null=True) if "samplerate" in audio else None
    pads = tuple(_read_pad(reader, name, node, models, rate) for name, node in reader.mapping(top["pads"], "pads").items())
    if not pads:
        reader.fail(top["pads"], "pads", "a preset needs at least one pad")
    note_to_pad = _note_table(reader, top["pads"], pads)
    controls = _read_controls(reader, top["controls"], pads, note_to_pad) if "controls" in top else ()
    pads = _with_tune_room(pads, controls)
    return Preset(
        path=path,
        name=reader.text(top["name"], "name") if "name" in top else path.stem,
        pads=pads,
        midi_input=reader.text(midi["input"], "midi.input", allow_null=True) if "input" in midi else None,
        midi_channel=reader.number(midi["channel"], "midi.channel", 1, 16, integer=True, allow_null=True) if "channel" in midi else None,
        midi_virtual=reader.boolean(midi["virtual"], "midi.virtual") if "virtual" in midi else False,
        audio_device=reader.scalar(audio["device"], "audio.device") if "device" in audio else None,
        blocksize=reader.number(audio["blocksize"], "audio.blocksize", 16, 4096, integer=True) if "blocksize" in audio else 128,
        samplerate=rate,
        note_to_pad=note_to_pad,
        controls=controls,
    )


def _with_tune_room(pads: tuple[Pad, ...], controls: tuple[Control, ...]) -> tuple[Pad, ...]:
    """Pads a tune knob can take lower get slots long enough for their lowest one-shots."""
    room = [0.0] * len(pads)
    for control in controls:
        if control.action == "tune":
            for p in range(len(pads)) if control.pad is None else (control.pad,):
                room[p] = max(room[p], -min(control.low, control.high))
    return tuple(replace(pad, spec=replace(pad.spec, tune_room=r)) if r else pad for pad, r in zip(pads, room))


def _read_models(reader: _Reader, node) -> dict[str, tuple[Path, tuple[str, ...], Settings]]:
    """Model name -> (file, class names, the settings it asks for). Each file's config is read
    now, so a broken or missing model is reported against the preset before anything starts."""
    if node is None:
        return {}
    models = {}
    for name, model_node in reader.mapping(node, "models").items():
        key = f"models.{name}"
        entry = reader.mapping(model_node, key, {"path"})
        if "path" not in entry:
            reader.fail(model_node, f"{key}.path", "missing")
        path = reader.file(entry["path"], f"{key}.path")
        try:
            config = read_config(path)
            models[name] = (path, config.classes, model_settings(config))
        except InputError as error:
            reader.fail(entry["path"], f"{key}.path", error.problem if error.source else str(error))
    return models


def _read_pad(reader: _Reader, name: str, node, models, samplerate: int | None) -> Pad:
    key = f"pads.{name}"
    fields = reader.mapping(node, key, PAD_KEYS)
    for required in ("notes", "model"):
        if required not in fields:
            reader.fail(node, f"{key}.{required}", "missing")
    model_name = reader.text(fields["model"], f"{key}.model", choices=sorted(models) or None)
    model_path, classes, defaults = models[model_name] if model_name in models else (None, (), Settings())
    if model_path is None:
        reader.fail(fields["model"], f"{key}.model", "no models are defined in 'models:'")
    class_name = _read_class(reader, fields, key, classes)
    source, strength = _read_variation(reader, fields, key)
    velocity_spread, pitch_spread = _read_humanize(reader, fields, key)

    def opt(field_name, default, read):
        return read(fields[field_name], f"{key}.{field_name}") if field_name in fields else default

    settings = Settings(
        steps=opt("steps", defaults.steps, lambda n, k: reader.number(n, k, 1, 1000, integer=True)),
        sampler=opt("sampler", defaults.sampler, lambda n, k: reader.text(n, k, choices=SAMPLERS)),
        schedule=opt("schedule", defaults.schedule, lambda n, k: reader.text(n, k, choices=SCHEDULES)),
        guidance=opt("guidance", defaults.guidance, lambda n, k: reader.number(n, k, 0, 20)),
        strength=strength,
    )
    spec = PadSpec(
        name=name, model=model_path, class_name=class_name,
        pool_size=opt("pool", 12, lambda n, k: reader.number(n, k, 1, 256, integer=True)),
        settings=settings, source=source,
        tune=float(opt("tune", 0.0, lambda n, k: reader.number(n, k, -24, 24))),
        decay=opt("decay", None, lambda n, k: reader.number(n, k, 0.005, 10, allow_null=True)),
        sample_rate=samplerate, pitch_spread=float(pitch_spread),
    )
    return Pad(
        name=name,
        notes=_read_notes(reader, fields["notes"], f"{key}.notes"),
        spec=spec,
        gain_db=float(opt("gain_db", 0.0, lambda n, k: reader.number(n, k, -60, 12))),
        pan=float(opt("pan", 0.0, lambda n, k: reader.number(n, k, -1, 1))),
        velocity_curve=opt("velocity_curve", "linear", lambda n, k: _read_curve(reader, n, k)),
        choke=opt("choke", None, lambda n, k: reader.text(n, k, allow_null=True)),
        release_on_note_off=opt("release_on_note_off", False, reader.boolean),
        velocity_spread=velocity_spread,
    )


def _read_class(reader, fields, key, classes) -> str | None:
    if "class" not in fields:
        if classes:
            reader.fail(fields["model"], f"{key}.class", f"missing: the model is class-conditional ({', '.join(classes)})")
        return None
    if not classes:
        reader.fail(fields["class"], f"{key}.class", "the model is unconditional: it has no classes")
    return reader.text(fields["class"], f"{key}.class", choices=classes)


def _read_variation(reader, fields, key) -> tuple[Path | None, float]:
    if "variation" not in fields:
        return None, 1.0
    where = f"{key}.variation"
    variation = reader.mapping(fields["variation"], where, {"source", "strength"})
    if "source" not in variation:
        reader.fail(fields["variation"], f"{where}.source", "missing")
    source = reader.file(variation["source"], f"{where}.source")
    strength = reader.number(variation["strength"], f"{where}.strength", 0, 1) if "strength" in variation else 0.5
    return source, float(strength)


def _read_humanize(reader, fields, key) -> tuple[int, float]:
    """(velocity spread, pitch spread in cents) of `humanize: {velocity, pitch}`."""
    if "humanize" not in fields:
        return 0, 0.0
    where = f"{key}.humanize"
    humanize = reader.mapping(fields["humanize"], where, {"velocity", "pitch"})
    velocity = reader.number(humanize["velocity"], f"{where}.velocity", 0, 64, integer=True) if "velocity" in humanize else 0
    pitch = reader.number(humanize["pitch"], f"{where}.pitch", 0, 100) if "pitch" in humanize else 0.0
    return velocity, pitch


def _read_notes(reader, node, key) -> tuple[int, ...]:
    items = node.value if isinstance(node, yaml.SequenceNode) else [node]
    if not items:
        reader.fail(node, key, "needs at least one note")
    return tuple(reader.number(item, key, 0, 127, integer=True) for item in items)


def _read_curve(reader, node, key):
    value = reader.scalar(node, key)
    if isinstance(value, str) and value in CURVES:
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0.1 <= value <= 10:
        return float(value)
    reader.fail(node, key, f"must be one of {', '.join(CURVES)} or an exponent from 0.1 to 10, not {value!r}")


def _note_table(reader, pads_node, pads) -> tuple[int, ...]:
    table = [-1] * 128
    owner_nodes = dict(reader.mapping(pads_node, "pads"))
    for index, pad in enumerate(pads):
        for note in pad.notes:
            if table[note] != -1:
                other = pads[table[note]].name
                notes_node = reader.mapping(owner_nodes[pad.name], f"pads.{pad.name}")["notes"]
                reader.fail(notes_node, f"pads.{pad.name}.notes", f"note {note} is already mapped to pad '{other}'")
            table[note] = index
    return tuple(table)


def _read_controls(reader: _Reader, node, pads, note_to_pad) -> tuple[Control, ...]:
    if not isinstance(node, yaml.SequenceNode):
        reader.fail(node, "controls", "must be a list of mappings such as {cc: 74, knob: gain_db, pad: snare}")
    return tuple(_read_control(reader, item, f"controls[{i}]", pads, note_to_pad) for i, item in enumerate(node.value))


def _read_control(reader: _Reader, node, key: str, pads, note_to_pad) -> Control:
    fields = reader.mapping(node, key, CONTROL_KEYS)
    sources = [name for name in ("cc", "note") if name in fields]
    actions = [name for name in ("knob", "button") if name in fields]
    if len(sources) != 1:
        reader.fail(node, key, "needs exactly one of cc or note")
    if len(actions) != 1:
        reader.fail(node, key, "needs exactly one of knob or button")
    source, action_kind = sources[0], actions[0]
    number = reader.number(fields[source], f"{key}.{source}", 0, 127, integer=True)
    if source == "note" and note_to_pad[number] >= 0:
        reader.fail(fields[source], f"{key}.note", f"note {number} already plays pad '{pads[note_to_pad[number]].name}'")
    names = KNOBS if action_kind == "knob" else BUTTONS
    action = reader.text(fields[action_kind], f"{key}.{action_kind}", choices=sorted(names))
    if action_kind == "knob" and source == "note":
        reader.fail(fields["note"], f"{key}.note", "a knob needs a cc (a note is a button)")
    pad = None
    if "pad" in fields:
        name = reader.text(fields["pad"], f"{key}.pad", choices=[p.name for p in pads])
        pad = [p.name for p in pads].index(name)
    low, high = DEFAULT_RANGES.get(action, (0.0, 1.0))
    if "range" in fields:
        if action_kind != "knob":
            reader.fail(fields["range"], f"{key}.range", "only a knob has a range")
        low, high = _read_range(reader, fields["range"], f"{key}.range", *KNOBS[action])
    return Control(source, number, action, pad, float(low), float(high))


def _read_range(reader: _Reader, node, key: str, lowest: float, highest: float) -> tuple[float, float]:
    if not isinstance(node, yaml.SequenceNode) or len(node.value) != 2:
        reader.fail(node, key, f"must be two numbers [at 0, at 127] from {lowest:g} to {highest:g}")
    low, high = (reader.number(item, key, lowest, highest) for item in node.value)
    return low, high
