"""A private JACK server (dummy driver), started and stopped safely beside others.

    with jack_server() as server:            # jackd -d dummy, a name no live server has
        subprocess.Popen(cmd, env=server.env)  # children find it via JACK_DEFAULT_SERVER
        with JackRecorder(server) as rec:      # record ports, send MIDI at exact frames
            ...

What the server gives (Debian jackd2 1.9.21, dummy driver; measured on a 2-core box):

- ready ~0.1-0.3 s after launch; stops in ~20 ms on SIGTERM. No dbus, no realtime
  rights, no JACK_NO_AUDIO_RESERVATION needed (the dummy driver reserves no device).
- ports system:playback_1/2 and system:capture_1/2. PortAudio's JACK host API ("JACK Audio
  Connection Kit") shows one device, "system" (2 in, 2 out), at the server's rate only,
  and auto-connects a stream's ports PortAudio:out_0/out_1 (numbered from 0) to
  system:playback_1/2. PortAudio scans host APIs when initialised: start the server first.
- a frame clock that follows the wall clock; cycles start at multiples of the period, and
  jack_last_frame_time() in a process callback is the frame time of that cycle's first
  sample (libjack's microsecond clock is CLOCK_MONOTONIC_RAW, not time.monotonic()).
- MIDI via python-rtmidi's JACK API (rtmidi.API_UNIX_JACK): a virtual port "P" of client
  "C" is the JACK port "C:P".

Defaults chosen from what failed otherwise:
- --sync: a late client delays the cycle instead of being skipped, so a recording has no
  holes (async: the recorder lost cycles). Late cycles are logged ("JackTimedDriver::Process
  XRun = N usec"); Server.xruns() counts them.
- --timeout 5000 (client timeout, ms): with jackd's default, client opens failed with
  "server_error" on a loaded 2-core machine.
- names from a fixed pool, starts and stops serialised by a file lock, parent-death signal
  (setpriv): see NAME_POOL, _one_at_a_time and _start.

Keep python-rtmidi out of a process that uses PortAudio or JACK-Client (see JackMidiSender).

This module needs only jackd and jack_lsp (Debian package jackd2); the clients beside it
(jacktest.recorder, jacktest.midi_sender) need JACK-Client.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

# Default server names. JACK registers each running server in /dev/shm/jack-shm-registry,
# which has 8 slots per machine; a server that dies uncleanly (killed, or stopped while a
# client hangs) leaves its slot taken, and only a server of the *same name* reclaims it.
# Reusing this pool of names keeps the registry from filling up ("Too many servers already
# active"), and a name in use by a live server is skipped.
NAME_POOL = tuple(f"noisepad-test-{i}" for i in range(8))

# Where Debian's jackd2 puts its sockets and semaphores (`jackd --version` prints it).
JACK_TMPDIR = Path("/dev/shm")

# Variables a JACK client library reads when it opens a client.
_ENV_KEYS = ("JACK_DEFAULT_SERVER", "JACK_NO_START_SERVER")


def jackd_installed() -> bool:
    """True when jackd and jack_lsp are installed (tests: skipif(not jackd_installed()))."""
    return shutil.which("jackd") is not None and shutil.which("jack_lsp") is not None


@dataclass
class Server:
    """A running jackd. Pass `env` to subprocesses; use `in_process()` for this process."""

    name: str
    rate: int
    period: int
    process: subprocess.Popen
    log_path: Path
    env: dict = field(repr=False)
    log_text: str = field(default="", repr=False)  # jackd's output, filled in when it stops

    @property
    def client_env(self) -> dict:
        """Only the variables that point a JACK client at this server."""
        return {key: self.env[key] for key in _ENV_KEYS}

    def log(self) -> str:
        """What jackd has printed so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return self.log_text

    def xruns(self) -> int:
        """How many xruns (late or missed cycles) jackd has reported."""
        return len(re.findall(r"xrun", self.log(), flags=re.IGNORECASE))

    def running(self) -> bool:
        return self.process.poll() is None

    def ports(self, *flags: str) -> list[str]:
        """Port names, from `jack_lsp` (flags as jack_lsp takes them, e.g. "-t")."""
        return _jack_lsp(self.env, *flags).splitlines()

    def connections(self) -> dict[str, list[str]]:
        """{port: [ports it is connected to]} for every port."""
        result: dict[str, list[str]] = {}
        port = None
        for line in _jack_lsp(self.env, "-c").splitlines():
            if line.startswith((" ", "\t")):
                result[port].append(line.strip())
            else:
                port = line.strip()
                result[port] = []
        return result

    def settle(self, cycles: int = 8) -> None:
        """Sleep a few cycles. A connection takes effect a cycle or more after jack_connect
        returns (an event sent at once was lost 1-2 times in 100), and the latency
        notifications it triggers race with a port unregistered meanwhile (segfaults in
        JackClient::HandleLatencyCallback, cf. jackaudio/jack2#216, seen with the libjack
        bundled in python-rtmidi's wheel). Used after every connect in this module."""
        time.sleep(max(0.02, cycles * self.period / self.rate))

    def wait_for_port(self, port: str, timeout: float = 5.0) -> None:
        """Wait until a port exists (clients in other processes register theirs late)."""
        deadline = time.monotonic() + timeout
        while port not in self.ports():
            if time.monotonic() > deadline:
                raise TimeoutError(f"JACK port {port!r} did not appear on {self.name}: {self.ports()}")
            time.sleep(0.01)

    @contextlib.contextmanager
    def in_process(self):
        """Point this process's JACK clients (PortAudio, and any client opened inside) at
        this server.

        Sets JACK_DEFAULT_SERVER/JACK_NO_START_SERVER in os.environ and, if sounddevice is
        imported, re-initialises PortAudio so that its JACK host API appears (PortAudio
        scans host APIs once, at initialisation). On exit it terminates PortAudio (closing
        its streams) *before* the server can stop: PortAudio 19.6 asserts, and aborts the
        whole process at exit, when its JACK client outlives the server. Then it restores
        the environment and re-initialises PortAudio without JACK.
        """
        try:
            with self.environ():
                _reinit_portaudio()
                try:
                    yield self
                finally:
                    _terminate_portaudio()
        finally:
            _initialize_portaudio()

    @contextlib.contextmanager
    def environ(self):
        """Only set JACK_DEFAULT_SERVER/JACK_NO_START_SERVER in os.environ (libjack reads
        them when a client opens: enough for rtmidi, not for an initialised PortAudio)."""
        saved = {key: os.environ.get(key) for key in _ENV_KEYS}
        os.environ.update(self.client_env)
        try:
            yield self
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def _terminate_portaudio() -> None:
    sd = sys.modules.get("sounddevice")
    if sd is not None:
        sd._terminate()


def _initialize_portaudio() -> None:
    sd = sys.modules.get("sounddevice")
    if sd is not None:
        sd._initialize()


def _reinit_portaudio() -> None:
    _terminate_portaudio()
    _initialize_portaudio()


def _jack_lsp(env: dict, *flags: str, attempts: int = 3) -> str:
    # A client open fails now and then (status 0x21) while another process starts or stops
    # a server of another name: about 1 in 100 here. Hence the retries.
    for attempt in range(attempts):
        result = subprocess.run(["jack_lsp", *flags], env=env, capture_output=True, text=True, timeout=30)
        if result.returncode == 0:
            return result.stdout
        time.sleep(0.05)
    raise RuntimeError(f"jack_lsp failed ({result.returncode}): {result.stderr.strip()}")


def jackd_command(name: str, rate: int, period: int, sync: bool = True, realtime: bool = False,
                  client_timeout_ms: int | None = None) -> list[str]:
    """The jackd command line. Server options come before `-d dummy`; after it, -r is the
    rate and -p the period (before it, -r means --no-realtime and -p --port-max)."""
    command = ["jackd", "--name", name, "--realtime" if realtime else "--no-realtime"]
    if sync:
        command.append("--sync")
    if client_timeout_ms is not None:
        command += ["--timeout", str(client_timeout_ms)]
    return command + ["-d", "dummy", "--rate", str(rate), "--period", str(period)]


@contextlib.contextmanager
def jack_server(name: str | None = None, rate: int = 44100, period: int = 128, *,
                sync: bool = True, realtime: bool = False, client_timeout_ms: int | None = 5000,
                timeout: float = 10.0):
    """Start `jackd -d dummy` under a name no running server has, wait until it serves
    clients, yield a Server, and stop it (SIGTERM, then SIGKILL) however the body ends.

    client_timeout_ms: how long the server waits for a client before giving up on it
    (jackd -t). The default 5000 keeps client opens from failing ("server_error") on a
    loaded 2-core machine; None leaves jackd's own default.
    """
    command = functools.partial(jackd_command, rate=rate, period=period, sync=sync,
                                realtime=realtime, client_timeout_ms=client_timeout_ms)
    server = _start(NAME_POOL if name is None else (name,), command, rate, period, timeout,
                    explicit=name is not None)
    try:
        yield server
    finally:
        _stop(server)
        server.log_text = server.log()  # kept for post-mortems after the file is gone
        server.log_path.unlink(missing_ok=True)


class _NameTaken(Exception):
    pass


@contextlib.contextmanager
def _one_at_a_time():
    """Serialise jackd starts and stops across processes (pytest-xdist workers, parallel
    sessions). jackd 1.9.21 starting while another stops has died of SIGBUS here, and a
    start also races with one of the same name."""
    with open(Path(tempfile.gettempdir()) / "noisepad-jackd.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _start(names, command, rate: int, period: int, timeout: float, explicit: bool) -> Server:
    with _one_at_a_time():
        return _start_unlocked(names, command, rate, period, timeout, explicit)


def _start_unlocked(names, command, rate: int, period: int, timeout: float, explicit: bool) -> Server:
    for name in names:
        env = dict(os.environ, JACK_DEFAULT_SERVER=name, JACK_NO_START_SERVER="1")
        if _name_in_use(name):
            if explicit:
                raise RuntimeError(f"a JACK server named {name!r} is already running")
            continue
        log_fd, log_name = tempfile.mkstemp(prefix=f"jackd-{name}-", suffix=".log")
        argv = command(name)
        if shutil.which("setpriv"):  # util-linux: jackd gets SIGTERM if this process dies
            argv = ["setpriv", "--pdeathsig", "TERM", *argv]
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log_fd, stderr=subprocess.STDOUT, env=env,
            start_new_session=True,  # a Ctrl-C in the terminal reaches pytest, not jackd
        )
        os.close(log_fd)
        server = Server(name, rate, period, process, Path(log_name), env)
        try:
            _wait_until_ready(server, timeout)
            return server
        except _NameTaken:  # another process started a server of this name just now
            server.log_path.unlink(missing_ok=True)
            if explicit:
                raise RuntimeError(f"a JACK server named {name!r} is already running") from None
        except BaseException:
            _terminate(process)  # we hold the lock already
            server.log_path.unlink(missing_ok=True)
            raise
    raise RuntimeError(f"every JACK server name in {names} is in use")


def _name_in_use(name: str) -> bool:
    """Whether a live server listens on that name's socket. A plain connect, not a JACK
    client: a client (jack_lsp) that reaches a server while it starts or stops can hang for
    seconds and delays that server's shutdown by its client timeout."""
    path = JACK_TMPDIR / f"jack_{name}_{os.getuid()}_0"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(2)
        try:
            probe.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError):  # none, or left by a killed one
            return False
        except OSError:
            return True
        return True


def _wait_until_ready(server: Server, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if not server.running():
            log = server.log()
            if "already active" in log and "Too many servers" not in log:
                raise _NameTaken(server.name)
            hint = ("\nThe JACK server registry is full of dead servers; with no jackd running, "
                    "`rm /dev/shm/jack-shm-registry` resets it.") if "Too many servers" in log else ""
            raise RuntimeError(f"jackd {server.name} exited with {server.process.returncode}:\n{log}{hint}")
        listening = _name_in_use(server.name)
        result = listening and subprocess.run(["jack_lsp"], env=server.env, capture_output=True,
                                              text=True, timeout=30)
        if listening and result.returncode == 0 and "system:playback_1" in result.stdout:
            # jack_lsp may have reached another server of this name whose start raced ours;
            # ours would then exit at once with "already active".
            try:
                server.process.wait(0.05)
            except subprocess.TimeoutExpired:
                return
            continue
        if time.monotonic() > deadline:
            raise TimeoutError(f"jackd {server.name} not ready after {timeout} s:\n{server.log()}")
        time.sleep(0.01)


def _stop(server: Server) -> None:
    if server.process.poll() is None:
        with _one_at_a_time():
            _terminate(server.process)


def _terminate(process: subprocess.Popen, timeout: float = 10.0) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    # No clean-up of /dev/shm here: a server stopped by SIGTERM removes its socket and
    # semaphores itself, and what a killed one leaves (socket, semaphores, registry slot,
    # /dev/shm/jack-UID-N segments) is reclaimed by the next server of the same name; deleting
    # by name could hit a new server that already took the name from the pool.


def jack_client(server: Server, name: str):
    """A JACK-Client client of this server (never one that starts a server)."""
    import jack

    return jack.Client(name, servername=server.name, no_start_server=True)
