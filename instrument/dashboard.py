"""`play`'s status while it runs. On a terminal, a live dashboard (rich): a row per pad and a
footer, redrawn a few times a second from the counters the callback and the generator leave
in shared arrays. Off a terminal (a log), a plain status line every few seconds.
"""

from __future__ import annotations

import sys
import time

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from engine.pool import Pools

BAR_WIDTH = 12
REDRAWS_PER_SECOND = 4
PLAIN_EVERY_S = 10.0


def status_display(names: list[str]):
    """The dashboard on a terminal, plain lines otherwise."""
    return Dashboard(names) if sys.stderr.isatty() else StatusLines()


def status_line(engine, pools: Pools, supervisor) -> str:
    stats, pool = engine.stats(), pools.stats()
    fresh = sum(p.fresh for p in pool.pads)
    ready = sum(p.available > 0 for p in pool.pads)
    return (f"pads {ready}/{len(pool.pads)} ready, fresh {fresh}/{sum(pools.sizes)} | hits {stats.hits} "
            f"({pool.fresh_hit_ratio:.0%} fresh) | {pool.rate:.1f} shots/s, generator {_state(supervisor)} | "
            f"voices {stats.voices} | xruns {stats.xruns} | callback p99 {stats.p99_ms:.2f}/{stats.budget_ms:.1f} ms")


def _state(supervisor) -> str:
    return "up" if supervisor.alive else "restarting"


def pad_table(names: list[str], pools: Pools) -> Table:
    """A row per pad: pool fill (a bar of one-shots ready, fresh ones solid), fresh share of
    its hits, hits, the seed of the one-shot it played last, and whether it is held."""
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column, justify in (("pad", "left"), ("pool", "left"), ("ready", "right"), ("fresh hits", "right"),
                            ("hits", "right"), ("last seed", "right"), ("", "left")):
        table.add_column(column, justify=justify, no_wrap=True)
    stats = pools.stats()
    for p, (name, pad) in enumerate(zip(names, stats.pads)):
        size = int(pools.sizes[p])
        last = int(pools.lru_last[p])
        table.add_row(
            name, _bar(pad.fresh, pad.available, size), f"{pad.available}/{size}",
            f"{pad.fresh_hits / pad.hits:.0%}" if pad.hits else "-", str(pad.hits),
            str(int(pools.seed[p, last])) if last >= 0 and pad.hits else "-",
            Text("held", style="bold yellow") if pools.held[p] else "",
        )
    return table


def footer(engine, pools: Pools, supervisor) -> Text:
    stats = engine.stats()
    return Text(f"{pools.stats().rate:.2f} one-shots/s | generator {_state(supervisor)} | voices {stats.voices} | "
                f"xruns {stats.xruns} | callback p99 {stats.p99_ms:.2f}/{stats.budget_ms:.1f} ms | "
                f"note delay {stats.delay_ms:.1f} ms")


def _bar(fresh: int, available: int, size: int) -> Text:
    """Solid: fresh one-shots; shaded: played ones still there to replay; dots: empty slots."""
    solid = round(BAR_WIDTH * fresh / size)
    shaded = max(0, round(BAR_WIDTH * available / size) - solid)
    bar = Text("█" * solid, style="green")
    bar.append("▒" * shaded, style="dim green")
    bar.append("·" * (BAR_WIDTH - solid - shaded), style="dim")
    return bar


class Dashboard:
    """The live display on stderr: `update` redraws it, `say` prints a line above it."""

    def __init__(self, names: list[str], console: Console | None = None):
        self.names = names
        self.console = console or Console(stderr=True)
        self.live = Live(console=self.console, refresh_per_second=REDRAWS_PER_SECOND, transient=False)

    def __enter__(self) -> "Dashboard":
        self.live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.live.__exit__(*exc)

    def update(self, engine, pools: Pools, supervisor) -> None:
        self.live.update(Group(pad_table(self.names, pools), footer(engine, pools, supervisor)))

    def say(self, line: str) -> None:
        self.console.print(line, markup=False, highlight=False)


class StatusLines:
    """Off a terminal: the status as a plain line every PLAIN_EVERY_S seconds."""

    def __init__(self):
        self.last = -PLAIN_EVERY_S

    def __enter__(self) -> "StatusLines":
        return self

    def __exit__(self, *exc) -> None:
        pass

    def update(self, engine, pools: Pools, supervisor) -> None:
        if time.monotonic() - self.last >= PLAIN_EVERY_S:
            self.say(status_line(engine, pools, supervisor))
            self.last = time.monotonic()

    def say(self, line: str) -> None:
        print(line, file=sys.stderr, flush=True)
