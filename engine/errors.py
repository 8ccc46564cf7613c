"""The one error type the engine raises for bad input: it names the file and the problem."""

from __future__ import annotations

from pathlib import Path


class InputError(Exception):
    """Bad input a user can fix. The CLI prints `str(error)` as one line and exits with 2."""

    def __init__(self, source: str | Path | None, problem: str):
        self.source = None if source is None else str(source)
        self.problem = problem
        super().__init__(f"{self.source}: {problem}" if self.source else problem)


def error_line(error: Exception, last: bool = False) -> str:
    """An exception as one line: its message's first line (`last`: its last, where a library
    puts the reason after its context), or its type's name when it says nothing."""
    if isinstance(error, FileNotFoundError) and last:
        return "file not found"
    lines = str(error).strip().splitlines()
    return (lines[-1] if last else lines[0]) if lines else type(error).__name__
