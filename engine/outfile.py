"""Output files: checked before any work is done, written atomically so none is ever half-written."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from engine.errors import InputError


def check_writable(path: str | Path) -> None:
    """Raise InputError now if `path` cannot be written as a file (before minutes of rendering)."""
    with replacing(path):
        pass   # nothing written: the probe file is removed and `path` is left as it is


def writable_folder(folder: str | Path) -> Path:
    """Create `folder` if needed and check a file can be written in it; InputError if not."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputError(folder, f"cannot create output folder ({error.strerror})") from None
    with replacing(folder / ".noisepad-write-test"):
        pass
    return folder


@contextmanager
def replacing(path: str | Path, commit: bool = False) -> Iterator[str]:
    """A temporary file beside `path`; with `commit`, it replaces `path` when the block succeeds.
    It is removed in every other case."""
    path = Path(path)
    if not path.parent.is_dir():
        raise InputError(path, "output folder does not exist")
    if path.is_dir():
        raise InputError(path, "is a folder; name a file to write")
    try:
        handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as error:
        raise InputError(path, f"cannot write here ({error.strerror})") from None
    os.close(handle)
    try:
        yield temp
        if commit:
            os.chmod(temp, 0o644)   # mkstemp makes it private; an output file is not
            os.replace(temp, path)
    finally:
        if os.path.exists(temp):
            os.unlink(temp)
