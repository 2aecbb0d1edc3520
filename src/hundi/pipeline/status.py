"""Live status while collecting: a rich screen on a TTY, one plain line per interval otherwise.

It only reads counters the collector already keeps (no work on the hot path) and refreshes
every ``HUNDI_LOG_UPDATE_INTERVAL`` seconds: per stream msgs/s, per symbol last price and
exchange→local lag, book state, gaps, reconnects, backpressure, and the last log lines.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Iterable
from typing import IO

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table

from hundi.pipeline.collector import Collector


class StatusReporter:
    """Samples a :class:`Collector` every ``interval`` seconds and shows it."""

    def __init__(
        self,
        collector: Collector,
        *,
        interval: float,
        log_lines: Iterable[str] = (),
        live: bool | None = None,
        out: IO[str] | None = None,
    ) -> None:
        self.collector = collector
        self.interval = interval
        self.log_lines = log_lines
        self.out = out or sys.stdout
        self.live = self.out.isatty() if live is None else live
        self._last_frames: dict[str, int] = {}
        self._last_total = 0
        self._last_at = time.monotonic()
        self.rates: dict[str, float] = {}
        self.total_rate = 0.0

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

    def line(self) -> str:
        """The plain one-line status."""
        acc = self.collector.accounting
        stored = sum(acc.records.values())
        backlog = sum(w.backlog for w in self.collector.writers)
        synced = [b.synced for _, b in self.collector.books()]
        books = f" books {sum(synced)}/{len(synced)} synced" if synced else ""
        paused = " PAUSED(store backpressure)" if self.collector.paused else ""
        return (
            f"{time.strftime('%H:%M:%S')} frames {acc.received} ({self.total_rate:,.0f}/s) "
            f"rejected {acc.rejected_total} stored {stored} backlog {backlog} "
            f"gaps {acc.gaps} resyncs {acc.resyncs} reconnects {acc.reconnects}{books}{paused}"
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
        for column in ("symbol", "last price", "lag ms", "records", "book", "best bid/ask"):
            symbols.add_column(column)
        books = {(ex, b.symbol): b for ex, b in collector.books()}
        for (exchange, symbol), view in sorted(collector.symbols.items()):
            book = books.get((exchange, symbol))
            state = (
                "-"
                if book is None
                else (
                    f"synced {book.bids}/{book.asks}" if book.synced else "[yellow]syncing[/yellow]"
                )
            )
            best = "-" if book is None else f"{book.best_bid:g} / {book.best_ask:g}"
            symbols.add_row(
                f"{exchange}:{symbol}",
                f"{view.last_price:g}",
                f"{view.lag_ms:,.1f}",
                f"{view.records:,}",
                state,
                best,
            )
        logs = Panel("\n".join(self.log_lines) or "(no log lines yet)", title="log")
        return Group(self.line(), streams, symbols, logs)

    async def run(self) -> None:
        """Refresh until cancelled."""
        if self.live:
            console = Console(file=self.out)
            with Live(self.render(), console=console, auto_refresh=False) as screen:
                while True:
                    await asyncio.sleep(self.interval)
                    self.sample()
                    screen.update(self.render(), refresh=True)
        else:
            while True:
                await asyncio.sleep(self.interval)
                if self.collector.stopping:
                    return  # sockets are closing: the summary follows
                self.sample()
                print(self.line(), file=self.out, flush=True)
