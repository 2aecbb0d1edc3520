"""Kraken capture inference: the config a foreign recording (``KRAKEN.*``) replays with.

The connection URL says the API: ``wss://ws.kraken.com/v2`` is v2, the bare host v1 (the
recordings in ``../shared/recordings`` are v1). The sent subscribe messages say the pairs,
channels and book depth. Files are read here line by line: the exchanges may not import
:mod:`hundi.capture` (the layering).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import msgspec

from hundi.exchanges.base import VenueConfig
from hundi.records import Channel

_TS = r"\d+(?:\.\d+)?"
_OPEN = re.compile(rf"^(\S+) <-> {_TS}\s*$")
_SENT = re.compile(rf"^(\S+) <- {_TS}: (.*)$")
_V2_CHANNELS = {"trade": Channel.TRADES, "book": Channel.BOOK, "ohlc": Channel.CANDLES}


def infer_capture(files: Sequence[Path], market: str | None) -> VenueConfig:
    """The config replaying ``files``; ValueError (one line) when they do not say enough."""
    if market not in (None, "spot"):
        raise ValueError(f"Kraken recordings are spot, not {market}: drop --market")
    urls: list[str] = []
    sent: list[Any] = []
    for path in files:
        for url, message in _setup(path):
            if message is None:
                urls.append(url)
            else:
                try:
                    sent.append(msgspec.json.decode(message))
                except msgspec.DecodeError:
                    continue
    if not urls:
        raise ValueError("cannot infer the Kraken API: the files open no connection")
    v2 = any(urlsplit(u).path.rstrip("/") == "/v2" for u in urls)
    symbols: dict[str, None] = {}
    channels: dict[Channel, None] = {}
    options: dict[str, str] = {"api": "v2" if v2 else "v1"}
    for message in sent:
        if not isinstance(message, dict):
            continue
        if v2 and message.get("method") == "subscribe":
            params = message.get("params") or {}
            name = params.get("channel")
            if name == "ticker":
                bbo = params.get("event_trigger") == "bbo"
                channel = Channel.BBO if bbo else Channel.TICKER
            elif name in _V2_CHANNELS:
                channel = _V2_CHANNELS[name]
            else:
                continue
            if name == "book" and "depth" in params:
                options["depth"] = str(params["depth"])
            if name == "ohlc" and "interval" in params:
                options["ohlc_interval"] = str(params["interval"])
            channels[channel] = None
            symbols.update(dict.fromkeys(params.get("symbol") or []))
        elif not v2 and message.get("event") == "subscribe":
            subscription = message.get("subscription") or {}
            if subscription.get("name") != "book":
                continue  # only v1 books are implemented
            channels[Channel.BOOK] = None
            if "depth" in subscription:
                options["depth"] = str(subscription["depth"])
            symbols.update(dict.fromkeys(message.get("pair") or []))
    if not symbols:
        raise ValueError("cannot infer Kraken pairs and channels: no subscribe messages")
    return VenueConfig(
        market="spot",
        symbols=tuple(symbols),
        channels=(*channels, Channel.EVENTS),
        options=options,
    )


def _setup(path: Path) -> Iterator[tuple[str, str | None]]:
    """(url, None) per connection opened, (url, message) per message sent, up to the first
    line of anything else: connection setup precedes data."""
    with path.open(encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\r\n")
            if not line.strip() or line.startswith("configuration:"):
                continue
            if m := _OPEN.match(line):
                yield m[1], None
            elif m := _SENT.match(line):
                yield m[1], m[2]
            else:
                return
