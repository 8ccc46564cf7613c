"""play's dashboard: a row per pad and a footer, drawn by rich from real pools and a real
callback engine, as a terminal shows it."""

from __future__ import annotations

import io

import numpy as np
from rich.console import Console

from instrument.dashboard import Dashboard, StatusLines
from instrument.audio_callback import AudioCallback
from instrument.mixer import Mixer, PadMix
from instrument.scheduler import EventQueue
from tests.pool_fixtures import fill, pools_of  # noqa: F401 (a fixture)


class NoGenerator:
    alive = False


def test_the_dashboard_shows_each_pads_pool_hits_last_seed_and_hold(pools_of):
    pools = pools_of([(4, 2, 64), (2, 2, 64), (3, 2, 64)])
    fill(pools, 0)
    fill(pools, 1)
    mixer = Mixer(pools, [PadMix(1.0, 0.0)] * 3, 44100, 128)
    engine = AudioCallback(mixer, EventQueue(), [-1] * 128, 44100)
    for _ in range(3):
        mixer.note_on(0, 100)                      # kick: 3 hits, all fresh
    mixer.note_on(1, 100)
    mixer.note_on(1, 100)
    mixer.note_on(1, 100)                          # snare: 2 fresh, then a replay
    pools.held[1] = 1
    for _ in range(2):
        engine.render(np.zeros((128, 2), np.float32), 0.0)

    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=120, color_system=None)
    with Dashboard(["kick", "snare", "ride"], console) as dashboard:
        dashboard.update(engine, pools, NoGenerator())
    rows = {line.split()[0]: line for line in screen.getvalue().splitlines() if line.split()}
    kick, snare, ride = rows["kick"], rows["snare"], rows["ride"]
    last_kick = int(pools.seed[0, pools.lru_last[0]])
    assert "4/4" in kick and "100%" in kick and " 3 " in kick and str(last_kick) in kick and "held" not in kick
    assert "2/2" in snare and "67%" in snare and "held" in snare
    assert "0/3" in ride and "·" * 12 in ride                 # nothing made yet: an empty bar
    assert "█" in kick and "▒" in snare                       # fresh ones solid, played ones shaded
    assert "generator restarting" in screen.getvalue() and "callback p99" in screen.getvalue()


def test_off_a_terminal_the_status_is_a_plain_line(pools_of, capsys):
    pools = pools_of([(2, 2, 64)])
    fill(pools, 0)
    engine = AudioCallback(Mixer(pools, [PadMix(1.0, 0.0)], 44100, 128), EventQueue(), [-1] * 128, 44100)
    lines = StatusLines()
    lines.update(engine, pools, NoGenerator())
    lines.update(engine, pools, NoGenerator())   # at most one line every 10 s
    printed = capsys.readouterr().err.splitlines()
    assert len(printed) == 1 and printed[0].startswith("pads 1/1 ready, fresh 2/2 | hits 0")
