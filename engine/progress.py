"""Progress of long work: a bar on a terminal, plain lines in a log or a pipe."""

from __future__ import annotations

import sys

from tqdm import tqdm


class PlainProgress:
    """tqdm's update/close for output that is not a terminal: one line per tenth of the way."""

    def __init__(self, total: int, label: str, unit: str):
        self.total, self.label, self.unit = total, label, unit
        self.done = 0
        self.shown = -1

    def update(self, count: int = 1) -> None:
        self.done += count
        tenth = self.done * 10 // max(self.total, 1)
        if tenth != self.shown:
            self.shown = tenth
            print(f"{self.label}: {self.done} of {self.total} {self.unit}s", file=sys.stderr, flush=True)

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class NoProgress(PlainProgress):
    def update(self, count: int = 1) -> None:
        self.done += count


def progress(total: int, label: str, unit: str = "one-shot", show: bool = True):
    """A context manager with update(n) and close()."""
    if not show:
        return NoProgress(total, label, unit)
    if sys.stderr.isatty():
        return tqdm(total=total, desc=label, unit=f" {unit}s", unit_scale=False)
    return PlainProgress(total, label, unit)
