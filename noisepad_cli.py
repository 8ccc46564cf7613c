"""The `noisepad` command: gathers the subcommands each package owns (instrument's and
training's), so neither package imports the other."""

from __future__ import annotations

import argparse
import sys

import instrument.cli
import training.cli
from engine.commandline import run_command


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="noisepad", description="A drum instrument whose every hit is freshly diffused.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    instrument.cli.add_commands(commands)
    training.cli.add_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_command(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
