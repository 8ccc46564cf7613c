"""The instrument's subcommands of `noisepad`: play, render, demo, keep, kit, generate, starter
and devices (noisepad_cli gathers them with training's)."""

from __future__ import annotations

from pathlib import Path

from engine.commandline import device_name as _device_name, interrupt_on_sigterm as _interrupt_on_sigterm
from engine.errors import InputError


def add_commands(commands) -> None:
    """The instrument's subcommands of `noisepad`."""
    _add_demo(commands)
    _add_play(commands)
    _add_devices(commands)
    _add_render(commands)
    _add_keep(commands)
    _add_kit(commands)
    _add_generate(commands)
    _add_starter(commands)


def _add_demo(commands) -> None:
    command = commands.add_parser("demo", help="render a short groove with the default kit, write it and play it")
    command.add_argument("-o", "--output", type=Path, default=Path("noisepad-demo.wav"), help="WAV file (default noisepad-demo.wav)")
    command.add_argument("--no-play", action="store_true", help="only write the file")
    command.add_argument("--seed", type=int, help="the same seed renders the same file (default: a new one each time)")
    command.add_argument("--device", help="cpu, cuda, cuda:N or mps (default: best available)")
    command.set_defaults(run=run_demo)


def run_demo(args) -> int:
    from instrument.demo import demo

    _interrupt_on_sigterm()
    demo(args.output, play=not args.no_play, seed=args.seed, device=_device_name(args.device))
    return 0


def _add_play(commands) -> None:
    command = commands.add_parser("play", help="play pads from MIDI in real time")
    command.add_argument("--preset", type=Path, help="preset (default: the default kit)")
    command.add_argument("--audio", choices=["jack", "portaudio"],
                         help="audio system (default: JACK when a server answers, else PortAudio)")
    command.add_argument("--outputs", choices=["main", "pads"], default="main",
                         help="JACK: main (a stereo mix) or pads (also a stereo port pair per pad)")
    port = command.add_mutually_exclusive_group()
    port.add_argument("--midi-in", help="MIDI input port, by name or part of it "
                                        "(default: PortAudio, the first; JACK, every physical MIDI output)")
    port.add_argument("--virtual", action="store_true",
                      help="connect nothing: a virtual MIDI input named 'noisepad' (JACK: the port noisepad:midi_in)")
    command.add_argument("--midi-api", choices=["alsa", "jack", "coremidi", "winmm"],
                         help="MIDI system for PortAudio play (default: the first that works)")
    command.add_argument("--channel", type=int, choices=range(1, 17), metavar="N", help="MIDI channel 1-16 (default: all)")
    command.add_argument("--device", help="PortAudio output device, by name, part of it, or number")
    command.add_argument("--samplerate", type=int, help="audio rate (default: the model's, if the device takes it; JACK: the server's)")
    command.add_argument("--blocksize", type=int, help="PortAudio: frames per audio block (default 128); JACK uses the server's period")
    command.add_argument("--record", type=Path, help="also write the output to this WAV file")
    command.add_argument("--cache", type=Path, help="folder for the pools' cache (default: the platform's cache folder)")
    command.add_argument("--keep-dir", type=Path, default=Path("noisepad-keepers"),
                         help="where a preset's keep button writes one-shots (default: ./noisepad-keepers)")
    command.add_argument("--generator-device", help="torch device for generation: cpu, cuda, mps (default: best available)")
    command.add_argument("--precision", default="fp32", help="fp32, or fp16/bf16 on a GPU")
    command.set_defaults(run=run_play)


def run_play(args) -> int:
    from instrument.play import PlayOptions, play

    device = int(args.device) if args.device is not None and args.device.isdigit() else args.device
    return play(PlayOptions(
        preset=args.preset, audio=args.audio, outputs=args.outputs, midi_in=args.midi_in, virtual=args.virtual, midi_api=args.midi_api,
        channel=args.channel, device=device, samplerate=args.samplerate, blocksize=args.blocksize,
        record=args.record, cache=args.cache, keep_dir=args.keep_dir, generator_device=args.generator_device,
        precision=args.precision,
    ))


def _add_devices(commands) -> None:
    command = commands.add_parser("devices", help="list MIDI inputs and audio outputs")
    command.set_defaults(run=run_devices)


def run_devices(args) -> int:
    from instrument.portaudio_audio import list_devices

    print(list_devices())
    return 0


def _add_render(commands) -> None:
    command = commands.add_parser("render", help="render a MIDI file, or a take's hit log, to WAV offline, "
                                                 "through the same mixer as live play")
    what = command.add_mutually_exclusive_group(required=True)
    what.add_argument("midi", type=Path, nargs="?", help="standard MIDI file")
    what.add_argument("--hits", type=Path, metavar="LOG",
                      help="a take's hit log (play --record TAKE.wav writes TAKE.hits.jsonl): the take again")
    command.add_argument("-o", "--output", type=Path, required=True, help="WAV file to write")
    command.add_argument("--preset", type=Path, help="preset (default: the default kit)")
    command.add_argument("--seed", type=int, default=0, help="the same seed renders the same file, bit for bit (default 0)")
    command.add_argument("--device", help="cpu, cuda, cuda:N or mps (default: best available)")
    command.set_defaults(run=run_render)


def run_render(args) -> int:
    from instrument.preset import load_preset
    from instrument.render import render, render_take

    _interrupt_on_sigterm()
    if args.hits is not None:
        seconds = render_take(args.hits, args.output, device=_device_name(args.device))
    else:
        preset = load_preset(args.preset)
        seconds = render(args.midi, args.output, preset, seed=args.seed, device=_device_name(args.device))
    print(f"wrote {args.output} ({seconds:.1f} s)")
    return 0


def _add_keep(commands) -> None:
    command = commands.add_parser("keep", help="write one hit of a take, from its hit log, as a keeper (WAV + recipe)")
    command.add_argument("log", type=Path, help="the take's hit log (TAKE.hits.jsonl)")
    which = command.add_mutually_exclusive_group(required=True)
    which.add_argument("--at", type=float, metavar="SECONDS", help="the hit sounding at this time of the take "
                                                                   "(the last to start at or before it)")
    which.add_argument("--hit", type=int, metavar="N", help="the pad's Nth hit (from 1; needs --pad)")
    command.add_argument("--pad", help="only this pad's hits")
    command.add_argument("-o", "--output", type=Path, default=Path("noisepad-keepers"),
                         help="folder (default ./noisepad-keepers)")
    command.add_argument("--device", help="cpu, cuda, cuda:N or mps (default: best available)")
    command.set_defaults(run=run_keep)


def run_keep(args) -> int:
    from engine.recipe import Remaker
    from instrument.hitlog import find_hit, read_take
    from instrument.keepers import write_oneshot

    take = read_take(args.log)
    hit = find_hit(take, args.log, at=args.at, pad=args.pad, number=args.hit)
    audio = Remaker(_device_name(args.device)).remake(hit.recipe)
    name = take.pad_names[hit.pad]
    written = write_oneshot(args.output, name, audio, hit.recipe)
    print(f"wrote {written} ({name}, {hit.frame / take.sample_rate:.3f} s into the take)")
    return 0


def _add_kit(commands) -> None:
    command = commands.add_parser("kit", help="N fresh one-shots per pad of a preset, as an SFZ or Hydrogen kit")
    command.add_argument("--preset", type=Path, help="preset (default: the default kit)")
    command.add_argument("-n", type=int, default=8, help="one-shots per pad (default 8)")
    command.add_argument("-o", "--output", type=Path, required=True, help="folder for the kit")
    command.add_argument("--format", choices=["sfz", "hydrogen"], default="sfz",
                         help="sfz: KIT.sfz and samples/; hydrogen: KIT/ with drumkit.xml, packed as KIT.h2drumkit")
    command.add_argument("--seed", type=int, default=0, help="the same seed makes the same kit (default 0)")
    command.add_argument("--device", help="cpu, cuda, cuda:N or mps (default: best available)")
    command.set_defaults(run=run_kit)


def run_kit(args) -> int:
    from instrument.kit_export import export_kit
    from instrument.preset import load_preset

    _interrupt_on_sigterm()
    preset = load_preset(args.preset)
    written = export_kit(preset, args.n, args.output, args.format, seed=args.seed, device=_device_name(args.device))
    print(f"wrote {written} ({args.n} one-shots per pad, {len(preset.pads)} pads)")
    return 0


def _add_generate(commands) -> None:
    command = commands.add_parser("generate", help="write N one-shots as WAV files (a sample pack)")
    what = command.add_mutually_exclusive_group(required=True)
    what.add_argument("--preset", type=Path, help="take model and settings from this preset's --pad")
    what.add_argument("--model", type=Path, help="engine model file (.safetensors)")
    what.add_argument("--remake", type=Path, metavar="JSON",
                      help="make a kept one-shot again from its JSON (a keeper's, or from `noisepad keep`)")
    command.add_argument("--pad", help="the preset's pad to generate for")
    command.add_argument("--class", dest="class_name", help="class to generate, for class-conditional models")
    command.add_argument("-n", type=int, default=8, help="how many one-shots (default 8)")
    command.add_argument("-o", "--output", type=Path, required=True, help="folder to write them into")
    command.add_argument("--seed", type=int, help="first seed (default: random); item i uses seed+i")
    _add_sampling_options(command)
    command.add_argument("--source", type=Path, help="make variations of this audio file")
    command.add_argument("--strength", type=float, default=None, help="variation strength in [0, 1] (default 0.5 with --source)")
    command.add_argument("--batch-size", type=int, default=8)
    command.add_argument("--quiet", action="store_true", help="no progress bar")
    command.set_defaults(run=run_generate)


def _add_starter(commands) -> None:
    command = commands.add_parser("starter", help="ship a few one-shots per class beside a model, so a kit sounds at once")
    command.add_argument("model", type=Path, help="engine model file (.safetensors)")
    command.add_argument("-n", type=int, default=3, help="one-shots per class (default 3)")
    command.add_argument("--seed", type=int, default=0, help="first seed (default 0)")
    command.add_argument("--device", help="cpu, cuda, cuda:N or mps (default: best available)")
    command.set_defaults(run=run_starter)


def run_starter(args) -> int:
    from engine.modelconfig import read_config
    from engine.outfile import check_writable
    from engine.starter import make_starter, starter_files

    read_config(args.model)   # a missing or broken model: one line, before any work
    if args.n < 1:
        raise InputError(None, f"-n must be at least 1, not {args.n}")
    for path in starter_files(args.model):
        check_writable(path)
    count = make_starter(args.model, args.n, args.seed, _device_name(args.device))
    print(f"wrote {count} one-shots to {starter_files(args.model)[0]}")
    return 0


def _add_sampling_options(command) -> None:
    from engine.settings import SAMPLERS, SCHEDULES, Settings

    defaults = Settings()
    command.add_argument("--steps", type=int, help=f"sampling steps (default {defaults.steps})")
    command.add_argument("--sampler", help=f"one of {', '.join(SAMPLERS)} (default {defaults.sampler})")
    command.add_argument("--schedule", help=f"one of {', '.join(SCHEDULES)} (default {defaults.schedule})")
    command.add_argument("--guidance", type=float, help=f"classifier-free guidance scale (default {defaults.guidance})")
    command.add_argument("--peak-db", type=float, default=-1.0, help="normalize peaks to this dBFS (default -1)")
    command.add_argument("--no-tail-gate", action="store_true", help="keep the tail as the model made it (see README)")
    command.add_argument("--device", help="cpu, cuda, cuda:N or mps (default: best available)")
    command.add_argument("--precision", default="fp32", help="fp32, or fp16/bf16 on a GPU")


def run_generate(args) -> int:
    from dataclasses import replace

    from engine.device import pick_device, pick_dtype
    from engine.postprocess import Finish
    from engine.modelconfig import read_config
    from engine.samplepack import PackRequest, write_sample_pack
    from engine.settings import model_settings

    if args.remake is not None:
        return _remake(args.remake, args.output, args.device)
    if args.preset is not None:
        model, class_name, source, settings = _pad_for_generate(args)
    else:
        model, class_name, source = args.model, args.class_name, args.source
        settings = model_settings(read_config(model))   # what the model file asks for
    if args.strength is not None and source is None:
        raise InputError(None, "--strength needs --source")
    if args.source is not None:
        settings = replace(settings, strength=0.5)
    overrides = {k: getattr(args, k) for k in ("steps", "sampler", "schedule", "guidance", "strength") if getattr(args, k) is not None}
    settings = replace(settings, **overrides, finish=Finish(peak_db=args.peak_db, tail_gate=not args.no_tail_gate))
    settings.check()
    device = pick_device(args.device)
    request = PackRequest(
        model=model, count=args.n, output=args.output, settings=settings, class_name=class_name,
        seed=args.seed, source=source, batch_size=max(1, args.batch_size),
        device=device, dtype=pick_dtype(args.precision, device),
    )
    written = write_sample_pack(request, show_progress=not args.quiet)
    print(f"wrote {len(written)} one-shots to {args.output}")
    return 0


def _remake(path: Path, folder: Path, device: str | None) -> int:
    from engine.recipe import Remaker, read_recipe
    from instrument.keepers import write_oneshot

    recipe, name = read_recipe(path)
    written = write_oneshot(folder, name, Remaker(_device_name(device)).remake(recipe), recipe)
    print(f"wrote {written}")
    return 0


def _pad_for_generate(args):
    from instrument.preset import load_preset

    if args.pad is None:
        raise InputError(args.preset, "--preset needs --pad NAME")
    spec = load_preset(args.preset).pad(args.pad).spec
    class_name = args.class_name if args.class_name is not None else spec.class_name
    source = args.source if args.source is not None else spec.source
    return spec.model, class_name, source, spec.settings


