"""tests.jacktest: real JACK audio and MIDI for tests and benchmarks, no sound card needed.

    from tests.jacktest import JackMidiSender, JackRecorder, jack_server

    with jack_server() as server:               # jackd -d dummy under a name of its own
        subprocess.Popen(command, env=server.env)  # a child finds it through JACK_DEFAULT_SERVER
        with JackRecorder(server) as recorder:    # records ports, sends MIDI at exact frames
            ...

server: the private server (jackd2's dummy driver). recorder: a JACK-Client client that
records ports by frame time and sends MIDI at exact frames. midi_sender: MIDI through
python-rtmidi's JACK API, each message's frame time tapped. A package of its own inside
tests/, which benchmarks/ import too; not part of the installed distribution.
"""

from tests.jacktest.midi_sender import JackMidiSender
from tests.jacktest.recorder import JackRecorder
from tests.jacktest.server import Server, jack_client, jack_server, jackd_command, jackd_installed

__all__ = ["JackMidiSender", "JackRecorder", "Server", "jack_client", "jack_server", "jackd_command", "jackd_installed"]
