"""cryptofeed's Binance feed with no-op callbacks, pointed at the hundi Binance simulator.

Runs in the bench venv (``make bench-venv``: cryptofeed from ``bench/requirements-cryptofeed.txt``,
never the project's lock), started by ``bench/vs_cryptofeed.py``. cryptofeed's Binance class
takes its URLs from the class attributes ``websocket_endpoints`` and ``rest_endpoints``, so a
subclass with the simulator's URLs reaches it for everything: ``exchangeInfo`` (symbol mapping,
fetched synchronously at construction), the combined stream ``/stream?streams=...`` and the
REST ``depth`` snapshot it takes before applying the first diff of each book.

The callbacks do nothing: cryptofeed still decodes each frame (yapic json, Decimal prices),
builds its typed objects and maintains the order books, which is its normal cost without a
backend. ``message_handler`` is wrapped to count frames and note the first/last frame time.
Prints one JSON line (frames, first_ns, last_ns) when the stream has been silent for
``--idle`` seconds (a finite replay is over) or after ``--duration``, then exits.

Run: ``.bench-venv/bin/python bench/cryptofeed_client.py --ws ws://H:P --rest http://H:P
--symbols BTCUSDT,ETHUSDT --duration 10``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from typing import Any

import cryptofeed.feed  # type: ignore[import-not-found]
from cryptofeed import FeedHandler  # type: ignore[import-not-found]
from cryptofeed.connection import (  # type: ignore[import-not-found]
    RestEndpoint,
    Routes,
    WebsocketEndpoint,
    WSAsyncConn,
)
from cryptofeed.defines import L2_BOOK, TICKER, TRADES  # type: ignore[import-not-found]
from cryptofeed.exchanges import Binance  # type: ignore[import-not-found]


class PlainWSAsyncConn(WSAsyncConn):  # type: ignore[misc]
    """cryptofeed's websocket connection, allowed to use ``ws://``: its constructor refuses
    anything but ``wss://`` and the simulator speaks plain WebSocket (no TLS, which would only
    add the same cost to every contender). Everything else is cryptofeed's own code."""

    def __init__(self, address: str, *args: Any, **kwargs: Any) -> None:
        plain = address.startswith("ws://")
        super().__init__("wss://" + address.removeprefix("ws://") if plain else address,
                         *args, **kwargs)  # fmt: skip
        if plain:
            self.address = address


cryptofeed.feed.WSAsyncConn = PlainWSAsyncConn  # the name Feed.connect() builds connections with


def simulator_feed(ws_url: str, rest_url: str) -> type[Any]:
    """A Binance feed class whose endpoints are the simulator's, counting every frame."""
    routes = Routes(
        "/api/v3/exchangeInfo",
        l2book="/api/v3/depth?symbol={}&limit={}",
        authentication="/api/v3/userDataStream",
    )

    class SimulatedBinance(Binance):  # type: ignore[misc]
        websocket_endpoints = [WebsocketEndpoint(ws_url)]
        rest_endpoints = [RestEndpoint(rest_url, routes=routes)]
        frames = 0
        first_ns = 0
        last_ns = 0

        async def message_handler(self, msg: str, conn: Any, timestamp: float) -> None:
            cls = SimulatedBinance
            now = time.time_ns()
            if not cls.first_ns:
                cls.first_ns = now
            cls.last_ns = now
            cls.frames += 1
            await super().message_handler(msg, conn, timestamp)

    return SimulatedBinance


async def _nothing(*_args: Any) -> None:
    """The no-op callback: the bench measures cryptofeed itself, not a backend."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ws", required=True, help="simulator ws_url (ws://host:port)")
    parser.add_argument("--rest", required=True, help="simulator rest_url (http://host:port)")
    parser.add_argument("--symbols", required=True, help="native symbols, e.g. BTCUSDT,ETHUSDT")
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--idle", type=float, default=1.0, help="stop after this long silent")
    parser.add_argument(
        "--no-uvloop", action="store_true", help="asyncio's own loop (cryptofeed uses uvloop)"
    )
    args = parser.parse_args()

    feed_class = simulator_feed(args.ws, args.rest)
    natives = args.symbols.split(",")
    mapping = {native: std for std, native in feed_class.symbol_mapping().items()}
    missing = [n for n in natives if n not in mapping]
    if missing:
        print(f"simulator does not list {missing}", file=sys.stderr)
        sys.exit(2)
    handler = FeedHandler(config={"log": {"disabled": True}, "uvloop": not args.no_uvloop})
    handler.add_feed(
        feed_class(
            symbols=[mapping[n] for n in natives],
            channels=[TRADES, TICKER, L2_BOOK],
            callbacks={TRADES: _nothing, TICKER: _nothing, L2_BOOK: _nothing},
        )
    )
    deadline = time.monotonic() + args.duration

    def report() -> None:
        print(
            json.dumps(
                {
                    "frames": feed_class.frames,
                    "first_ns": feed_class.first_ns,
                    "last_ns": feed_class.last_ns,
                }
            ),
            flush=True,
        )
        # cryptofeed's own shutdown reconnects and logs; the measurement is over, leave now
        os._exit(0)

    def watch() -> None:
        idle = feed_class.last_ns and time.time_ns() - feed_class.last_ns > args.idle * 1e9
        if idle or time.monotonic() >= deadline:
            report()
        loop.call_later(0.05, watch)

    loop = asyncio.new_event_loop()  # under the policy FeedHandler set (uvloop by default)
    asyncio.set_event_loop(loop)
    loop.call_later(0.05, watch)
    handler.run(install_signal_handlers=False)


if __name__ == "__main__":
    main()
