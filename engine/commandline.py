"""What every `noisepad` subcommand shares: the device option's meaning, SIGTERM as Ctrl-C, and
how a command ends (bad input: one line naming the problem, exit code 2; Ctrl-C: 130)."""

from __future__ import annotations

import argparse
import signal
import sys

from engine.errors import InputError

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


def run_command(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> int:
    args = parser.parse_args(argv)
    try:
        return args.run(args) or 0
    except InputError as error:
        print(f"noisepad {args.command}: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"\nnoisepad {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def interrupt_on_sigterm() -> None:
    """SIGTERM ends the command as Ctrl-C does: through the with-blocks, so shared memory is
    released and no output is left half-written."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def device_name(requested: str | None) -> str:
    """--device as a torch device name: the one asked for, or the best there is."""
    from engine.device import pick_device   # torch: only for commands that use it

    return str(pick_device(requested))
