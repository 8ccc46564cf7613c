"""Runs the generator process and restarts it when it dies.

Lives in the instrument process, which never imports torch: the process body is in
`engine.generator_process`, imported only inside the spawned process.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
import time

from engine.plan import GeneratorConfig

log = logging.getLogger("noisepad.generator")


def _run_generator(config: GeneratorConfig, stop_flag, run_index: int) -> None:
    from engine.generator_process import run_generator

    run_generator(config, stop_flag, run_index)


class GeneratorSupervisor:
    """Runs the generator process and restarts it after a crash, waiting longer after each
    crash in a row. A plain thread of the instrument process; never the audio callback."""

    def __init__(self, config: GeneratorConfig, check_every: float = 0.25,
                 backoff: float = 1.0, max_backoff: float = 30.0, stable_after: float = 60.0):
        self.config = config
        self.check_every = check_every
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.stable_after = stable_after       # a run this long resets the backoff
        self.restarts = 0
        self._context = multiprocessing.get_context("spawn")
        # tells the process to finish and save; a plain shared byte, not an Event: a process
        # killed while waiting on a multiprocessing.Event leaves it wedged and set() hangs
        self._stop = self._context.RawValue("b", 0)
        self._stopping = threading.Event()     # tells the watcher thread
        self._process = None
        self._started = 0.0
        self._thread: threading.Thread | None = None
        self._runs = 0

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.is_alive()

    def start(self) -> "GeneratorSupervisor":
        if self._thread is not None:
            raise RuntimeError("a supervisor starts once")
        self._launch()
        self._thread = threading.Thread(target=self._watch, name="noisepad-supervisor", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the process to finish (it saves the cache), then end it if it does not."""
        self._stopping.set()
        self._stop.value = 1
        if self._thread is not None:
            self._thread.join()
        process = self._process
        if process is None:
            return
        process.join(timeout)
        if process.is_alive():
            log.warning("generator did not stop within %.0f s; terminating it", timeout)
            process.terminate()
            process.join(2.0)
        if process.is_alive():
            process.kill()
            process.join()

    def __enter__(self) -> "GeneratorSupervisor":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _launch(self) -> None:
        self._process = self._context.Process(
            target=_run_generator, args=(self.config, self._stop, self._runs),
            name="noisepad-generator", daemon=True,
        )
        self._started = time.monotonic()
        self._runs += 1
        self._process.start()

    def _watch(self) -> None:
        crashes_in_a_row = 0
        while not self._stopping.wait(self.check_every):
            if self._process.is_alive():
                continue
            lived = time.monotonic() - self._started
            crashes_in_a_row = 1 if lived >= self.stable_after else crashes_in_a_row + 1
            delay = min(self.max_backoff, self.backoff * 2 ** (crashes_in_a_row - 1))
            log.warning("generator exited (code %s) after %.1f s; restarting in %.1f s",
                        self._process.exitcode, lived, delay)
            if self._stopping.wait(delay):
                return
            self.restarts += 1
            try:
                self._launch()
            except OSError as error:  # e.g. out of memory or processes; try again after the backoff
                log.warning("cannot start the generator: %s", error)
