"""jacktest: real JACK audio and MIDI for tests and benchmarks, no sound card needed.

    from jacktest import JackMidiSender, JackRecorder, jack_server

    with jack_server() as server:               # jackd -d dummy under a name of its own
        subprocess.Popen(command, env=server.env)  # a child finds it through JACK_DEFAULT_SERVER
        with JackRecorder(server) as recorder:    # records ports, sends MIDI at exact frames
            ...

server: the private server (jackd2's dummy driver). recorder: a JACK-Client client that
records ports by frame time and sends MIDI at exact frames. midi_sender: MIDI through
python-rtmidi's JACK API, each message's frame time tapped. Not part of the installed
distribution: it lives beside tests/ and benchmarks/, which import it.
"""

from jacktest.midi_sender import JackMidiSender
from jacktest.recorder import JackRecorder
from jacktest.server import Server, jack_client, jack_server, jackd_command, jackd_installed

__all__ = ["JackMidiSender", "JackRecorder", "Server", "jack_client", "jack_server", "jackd_command", "jackd_installed"]
