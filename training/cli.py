"""Training's subcommands of `noisepad`: convert, dataset, train, distill and export."""

from __future__ import annotations

from pathlib import Path

from engine.commandline import device_name as _device_name
from engine.errors import InputError


def add_commands(commands) -> None:
    _add_convert(commands)
    _add_dataset(commands)
    _add_train(commands)
    _add_distill(commands)
    _add_export(commands)


def _add_convert(commands) -> None:
    command = commands.add_parser("convert", help="import a tiny-audio-diffusion checkpoint (.ckpt + config.yaml)")
    command.add_argument("checkpoint", type=Path, help="PyTorch Lightning .ckpt")
    command.add_argument("--config", type=Path, required=True, help="the Hydra config.yaml it was trained with")
    command.add_argument("-o", "--output", type=Path, required=True, help="engine model file to write")
    command.set_defaults(run=run_convert)


def run_convert(args) -> int:
    from engine.convert import convert

    model = convert(args.checkpoint, args.config, args.output)
    parameters = sum(p.numel() for p in model.parameters())
    print(f"wrote {args.output} ({parameters / 1e6:.1f} M parameters)")
    return 0


def _add_dataset(commands) -> None:
    command = commands.add_parser("dataset", help="build a training set from folders of one-shots, Hydrogen drumkits and SoundFonts")
    command.add_argument("sources", type=Path, nargs="+", metavar="SRC",
                         help="a folder with one sub-folder per class, a Hydrogen drumkit, a folder of drumkits, "
                              "or a SoundFont (.sf2/.sf3: its drum kits, rendered by FluidSynth)")
    command.add_argument("-o", "--output", type=Path, required=True, help="dataset folder to write")
    command.add_argument("--hold-out", action="append", default=[], metavar="KIT",
                         help="keep this kit (or source folder) out of training, for evaluation; repeatable")
    command.add_argument("--length", type=int, default=32768, help="samples per one-shot (default 32768)")
    command.add_argument("--samplerate", type=int, default=44100, help="rate of the dataset (default 44100)")
    command.add_argument("--show-classes", action="store_true", help="also print the instrument-name-to-class table")
    command.set_defaults(run=run_dataset)


def run_dataset(args) -> int:
    _training_package()
    from training.classes import mapping_table
    from training.dataset import build_dataset, summary
    from training.oneshot import OneShotFormat

    if args.show_classes:
        print(mapping_table())
    if args.length < 1 or args.samplerate < 1:
        raise InputError(None, "--length and --samplerate must be positive")
    manifest = build_dataset(args.sources, args.output, OneShotFormat(sample_rate=args.samplerate, length=args.length), tuple(args.hold_out))
    print(summary(manifest))
    print(f"wrote {len(manifest.items)} one-shots to {args.output}")
    return 0


def _add_train(commands) -> None:
    command = commands.add_parser("train", help="train a model on a dataset (run it again to resume)")
    command.add_argument("data", type=Path, help="dataset folder (from `noisepad dataset`)")
    command.add_argument("--config", default="default", help="tiny, default, seed or a YAML file (default: default)")
    command.add_argument("-o", "--output", type=Path, required=True, metavar="RUN", help="run folder")
    command.add_argument("--steps", type=int, help="train until this many optimizer steps (default: the config's)")
    command.add_argument("--minutes", type=float,
                         help="stop after this much training time, counting every session of the run (default: no limit)")
    command.add_argument("--init", type=Path, help="fine-tune from this engine model file")
    command.add_argument("--quiet", action="store_true", help="no progress bar")
    command.set_defaults(run=run_train)


def run_train(args) -> int:
    _training_package()
    from training.run import train

    model = train(args.data, args.config, args.output, steps=args.steps, init=args.init, progress=not args.quiet,
                  minutes=args.minutes)
    print(f"trained; EMA model in {model} (export it with `noisepad export {args.output} -o MODEL`)")
    return 0


def _add_distill(commands) -> None:
    command = commands.add_parser("distill", help="train a student that samples in fewer steps (run it again to resume)")
    command.add_argument("model", type=Path, help="the teacher: an engine model file")
    command.add_argument("-o", "--output", type=Path, required=True, help="the student's model file to write")
    command.add_argument("--steps", type=int, default=4, help="the student's sampling steps (default 4)")
    command.add_argument("--run", dest="run_folder", type=Path, help="folder for the run's state (default: OUTPUT with .run)")
    command.add_argument("--iterations", type=int, default=2000, help="optimizer steps per halving (default 2000)")
    command.add_argument("--batch-size", type=int, default=4)
    command.add_argument("--lr", type=float, default=5e-5, help="learning rate (default 5e-5)")
    command.add_argument("--samples-per-class", type=int, default=16, help="teacher one-shots to learn from (default 16)")
    command.add_argument("--minutes", type=float, help="stop after this long in this session (the run is saved)")
    command.add_argument("--half", action="store_true", help="store the student's weights in fp16 (half the size)")
    command.add_argument("--device", help="cpu, cuda, cuda:N or mps (default: best available)")
    command.set_defaults(run=run_distill)


def run_distill(args) -> int:
    from engine.outfile import check_writable
    from training.distill import DistillSetup, distill

    check_writable(args.output)
    setup = DistillSetup(teacher=str(args.model.resolve()), steps=args.steps, iterations=args.iterations,
                         batch_size=args.batch_size, learning_rate=args.lr, samples_per_class=args.samples_per_class)
    run = args.run_folder or args.output.with_suffix(".run")
    written = distill(setup, run, args.output, device=_device_name(args.device), minutes=args.minutes, half=args.half)
    if written is None:
        print(f"stopped; {run} is saved: run the same command to go on")
    else:
        print(f"wrote {written}: samples in {args.steps} DDIM steps")
    return 0


def _add_export(commands) -> None:
    command = commands.add_parser("export", help="write a run's EMA weights as an engine model file")
    command.add_argument("run_folder", type=Path, metavar="RUN", help="run folder")
    command.add_argument("-o", "--output", type=Path, required=True, help="model file to write (.safetensors)")
    command.add_argument("--half", action="store_true", help="store fp16 weights (half the size)")
    command.set_defaults(run=run_export)


def run_export(args) -> int:
    from training.run import export

    config = export(args.run_folder, args.output, half=args.half)
    print(f"wrote {args.output} ({', '.join(config.classes) or 'unconditional'})")
    return 0


def _training_package():
    try:
        import lightning  # noqa: F401
        import matplotlib  # noqa: F401
        import pyloudnorm  # noqa: F401
        import sf2utils  # noqa: F401
    except ImportError as error:
        raise InputError(None, f"training needs the train extra: pip install 'noisepad[train]' ({error.name} is missing)") from None
