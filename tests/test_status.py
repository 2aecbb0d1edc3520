"""The status views read the collector's counters: plain line and rich screen."""

from __future__ import annotations

import asyncio
import io
import sys
from pathlib import Path

from rich.console import Console

sys.path.insert(0, str(Path(__file__).resolve().parent / "connection"))

from wsharness import Exchange, SeqVenue, until

from hundi.connection.client import PicowsClient
from hundi.pipeline.collector import Collector, CollectorSettings
from hundi.pipeline.status import StatusReporter


async def test_plain_line_and_live_screen_show_the_run() -> None:
    exchange = await Exchange().start()
    try:
        collector = Collector(
            [SeqVenue(exchange.url)],
            [],
            settings=CollectorSettings(flush_interval=0.05),
            client=PicowsClient(),
        )
        out = io.StringIO()
        reporter = StatusReporter(
            collector, interval=0.1, log_lines=["12:00:00 WARNING something odd"], out=out
        )
        assert reporter.live is False  # StringIO is not a terminal
        running = asyncio.create_task(collector.run())
        # until a record of the symbol is drained (a fixed 0.5 s run saw none on a loaded host)
        await until(lambda: ("testex", "X-USD") in collector.symbols, within=60)
        collector.stop("the symbol was seen")
        await running
    finally:
        await exchange.close()
    reporter.sample()
    line = reporter.line()
    assert f"frames {collector.accounting.received} " in line
    assert "reconnects 0" in line
    screen = Console(file=io.StringIO(), width=160, record=True)
    screen.print(reporter.render())
    text = screen.export_text()
    assert "testex:main" in text and "testex:X-USD" in text
    assert "something odd" in text
