"""Live status while collecting: a rich screen on a TTY, a slow plain line otherwise.

It only reads counters the collector already keeps (no work on the hot path). On a terminal
the screen refreshes every ``HUNDI_LOG_UPDATE_INTERVAL`` seconds: per stream msgs/s, per symbol
last price and exchange→local lag, book state, gaps, reconnects, backpressure, and the last log
lines. Piped or in a container, one compact line every ``HUNDI_STATUS_LINE_INTERVAL`` seconds
(60 by default): a line per refresh would be 3,600 lines an hour in a log nobody reads.

Prices show at the symbol's precision: the most decimals seen so far in its best bid and ask
(the exchange's own prices; the last price when there is no book), since ``:g`` cut
``59999.62 / 59999.63`` to ``59999.6 / 59999.6``. The screen left at exit shows each book as it
was when the stop began, not as the closing sockets left it (cleared, ``nan``).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import sys
import time
from collections.abc import Iterable
from typing import IO

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from hundi.exchanges.base import BookStatus
from hundi.pipeline.collector import Collector

# More decimals than any venue's tick: beyond this a float is noise, not precision.
MAX_DECIMALS = 10


def decimals_of(price: float) -> int:
    """The fewest decimals that give ``price`` back, to within a few units in the last place
    (a mid computed from two exact prices carries float noise, not precision)."""
    if not math.isfinite(price) or price == 0:
        return 0
    tolerance = 4 * math.ulp(price)
    for decimals in range(MAX_DECIMALS):
        if abs(round(price, decimals) - price) <= tolerance:
            return decimals
    return MAX_DECIMALS


def format_price(price: float, decimals: int) -> str:
    """``price`` at ``decimals`` places; ``-`` when there is none (an empty side is ``nan``)."""
    return f"{price:.{decimals}f}" if math.isfinite(price) and price else "-"


class StatusReporter:
    """Samples a :class:`Collector` and shows it: a live screen every ``interval`` seconds on a
    terminal, else a plain line every ``line_interval`` seconds."""

    def __init__(
        self,
        collector: Collector,
        *,
        interval: float,
        line_interval: float = 60.0,
        log_lines: Iterable[str] = (),
        live: bool | None = None,
        out: IO[str] | None = None,
    ) -> None:
        self.collector = collector
        self.interval = interval
        self.line_interval = line_interval
        self.log_lines = log_lines
        self.out = out or sys.stdout
        self.live = self.out.isatty() if live is None else live
        self._last_frames: dict[str, int] = {}
        self._last_total = 0
        self._last_at = time.monotonic()
        self.rates: dict[str, float] = {}
        self.total_rate = 0.0
        # (exchange, symbol) → the most decimals seen in its prices (only ever grows, so the
        # columns do not jump)
        self.decimals: dict[tuple[str, str], int] = {}

    def sample(self) -> None:
        """Update the msgs/s figures from the counters since the previous sample."""
        now = time.monotonic()
        elapsed = max(now - self._last_at, 1e-6)
        for manager in self.collector.managers:
            for key, stats in manager.stats.items():
                name = f"{manager.protocol.exchange}:{key}"
                before = self._last_frames.get(name, 0)
                self.rates[name] = (stats.frames - before) / elapsed
                self._last_frames[name] = stats.frames
        received = self.collector.accounting.received
        self.total_rate = (received - self._last_total) / elapsed
        self._last_total = received
        self._last_at = now

    def books(self) -> list[tuple[str, BookStatus]]:
        """The books to show: live while running; once stopping, as the stop left them before
        their sockets' close cleared them (no state worth showing; see
        :attr:`Collector.books_at_stop`)."""
        if self.collector.stopping and self.collector.books_at_stop is not None:
            return self.collector.books_at_stop
        return self.collector.books()

    def precision(self, exchange: str, symbol: str, *prices: float) -> int:
        """The symbol's decimals, widened by ``prices`` when they carry more."""
        key = (exchange, symbol)
        seen = max((decimals_of(p) for p in prices), default=0)
        decimals = self.decimals[key] = max(self.decimals.get(key, 0), seen)
        return decimals

    def line(self) -> str:
        """The plain one-line status."""
        acc = self.collector.accounting
        stored = sum(acc.records.values())
        backlog = sum(w.backlog for w in self.collector.writers)
        synced = [b.synced for _, b in self.books()]
        books = f" books {sum(synced)}/{len(synced)} synced" if synced else ""
        paused = " PAUSED(store backpressure)" if self.collector.paused else ""
        owed = sum(venue.owed_ids() for venue in self.collector.venues)
        backfill = f" backfilling {owed} trade ids" if owed else ""
        return (
            f"{time.strftime('%H:%M:%S')} frames {acc.received} ({self.total_rate:,.0f}/s) "
            f"rejected {acc.rejected_total} stored {stored} backlog {backlog} "
            f"gaps {acc.gaps} resyncs {acc.resyncs} reconnects {acc.reconnects}{books}{paused}"
            f"{backfill}"
        )

    def render(self) -> Group:
        """The rich screen."""
        collector = self.collector
        streams = Table(title="streams", expand=True)
        for column in ("stream", "state", "msgs/s", "frames", "reconnects", "last error"):
            streams.add_column(column)
        for manager in collector.managers:
            for key, stats in manager.stats.items():
                name = f"{manager.protocol.exchange}:{key}"
                streams.add_row(
                    name,
                    "up" if stats.connected else "[red]down[/red]",
                    f"{self.rates.get(name, 0.0):,.0f}",
                    f"{stats.frames:,}",
                    str(stats.reconnects),
                    stats.last_error[-60:],
                )
        symbols = Table(title="symbols", expand=True)
        for column in ("symbol", "last price", "lag ms", "records", "book", "best bid / ask"):
            symbols.add_column(column)
        books = {(ex, b.symbol): b for ex, b in self.books()}
        # A book that never got a frame has no symbol view yet; it shows, saying why.
        for exchange, symbol in sorted({*collector.symbols, *books}):
            view = collector.symbols.get((exchange, symbol))
            book = books.get((exchange, symbol))
            last = view.last_price if view is not None else math.nan
            # The book's prices are the exchange's own; the last price may be a computed mid.
            decimals = self.precision(exchange, symbol, *((last,) if book is None else _best(book)))
            symbols.add_row(
                f"{exchange}:{symbol}",
                format_price(last, max(decimals, decimals_of(last))),
                "-" if view is None else f"{view.lag_ms:,.1f}",
                "0" if view is None else f"{view.records:,}",
                _book_state(book),
                "-" if book is None else " / ".join(format_price(p, decimals) for p in _best(book)),
            )
        logs = Panel("\n".join(self.log_lines) or "(no log lines yet)", title="log")
        return Group(self.line(), streams, symbols, logs)

    async def run(self) -> None:
        """Refresh until cancelled; a terminal is left showing the state at the stop."""
        if self.live:
            console = Console(file=self.out)
            with Live(self.render(), console=console, auto_refresh=False) as screen:
                try:
                    while True:
                        await asyncio.sleep(self.interval)
                        self.sample()
                        screen.update(self.render(), refresh=True)
                finally:
                    with contextlib.suppress(Exception):  # the exit must not fail on a render
                        self.sample()
                        screen.update(self.render(), refresh=True)
        else:
            while True:
                await asyncio.sleep(self.line_interval)
                if self.collector.stopping:
                    return  # sockets are closing: the summary follows
                self.sample()
                print(self.line(), file=self.out, flush=True)


def _best(book: BookStatus) -> tuple[float, float]:
    return book.best_bid, book.best_ask


def _book_state(book: BookStatus | None) -> str:
    if book is None:
        return "-"
    if book.synced:
        return f"synced {book.bids}/{book.asks}"
    return f"[yellow]not synced: {escape(book.waiting or 'the venue gives no reason')}[/yellow]"
