"""Bitfinex capture inference: the config a foreign recording of the public WebSocket was made
with, from its connection URL, its ``conf`` flags and its ``subscribe`` messages.

Read here line by line, not through :mod:`hundi.capture` (the layering forbids it); only the
connection setup matters: ``URL <-> TS`` (opened) and ``URL <- TS: MESSAGE`` (sent) lines.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from urllib.parse import urlsplit

import msgspec

from hundi.exchanges.base import VenueConfig
from hundi.exchanges.bitfinex.market import CHECKSUM_FLAG, SEQ_FLAG
from hundi.records import Channel

_CHANNELS = {
    "trades": Channel.TRADES,
    "book": Channel.BOOK,
    "ticker": Channel.TICKER,
    "candles": Channel.CANDLES,
}
_TS = r"\d+(?:\.\d+)?"
_OPEN = re.compile(rf"^(\S+) <-> {_TS}\s*$")
_SENT = re.compile(rf"^(\S+) <- {_TS}: (.*)$")


def infer_capture(files: Sequence[Path], market: str | None) -> VenueConfig:
    """The config that replays the recordings ``files``; ValueError (one line) if they do not
    say enough."""
    if market not in (None, "spot"):
        raise ValueError(f"Bitfinex captures are spot market data, not {market}")
    urls: list[str] = []
    symbols: dict[str, None] = {}
    channels: dict[Channel, None] = {}
    options: dict[str, str] = {}
    for path in files:
        for url, sent in _setup(path):
            if sent is None:
                urls.append(url)
                continue
            message = _decode(sent)
            flags = message.get("flags")
            if message.get("event") == "conf" and isinstance(flags, int):
                options["sequence"] = "true" if flags & SEQ_FLAG else "false"
                options["checksum"] = "true" if flags & CHECKSUM_FLAG else "false"
            elif message.get("event") == "subscribe":
                _subscribed(message, symbols, channels, options)
    if not symbols or not urls:
        raise ValueError(
            "cannot infer the Bitfinex configuration: the capture has no connection or "
            "subscribe messages"
        )
    options.setdefault("sequence", "false")  # no conf message: Bitfinex sends no flags
    options.setdefault("checksum", "false")
    base = urlsplit(urls[0])
    return VenueConfig(
        market="spot",
        symbols=tuple(symbols),
        channels=(*channels, Channel.EVENTS),
        endpoint=f"{base.scheme}://{base.netloc}",
        options=options,
    )


def _subscribed(
    message: dict[str, object],
    symbols: dict[str, None],
    channels: dict[Channel, None],
    options: dict[str, str],
) -> None:
    channel = _CHANNELS.get(str(message.get("channel")))
    if channel is None:
        return
    symbol = message.get("symbol") or message.get("pair")
    if channel is Channel.CANDLES:
        parts = str(message.get("key", "")).split(":", 2)  # trade:1m:tBTCUSD
        if len(parts) != 3:
            return
        options["candle_interval"], symbol = parts[1], parts[2]
    elif channel is Channel.BOOK:
        for name, option in (("prec", "book_precision"), ("len", "book_length"),
                             ("freq", "book_frequency")):  # fmt: skip
            if name in message:
                options[option] = str(message[name])
    if isinstance(symbol, str) and symbol:
        symbols[symbol if symbol.startswith("t") else f"t{symbol}"] = None
        channels[channel] = None


def _decode(data: str) -> dict[str, object]:
    try:
        message = msgspec.json.decode(data)
    except msgspec.DecodeError:
        return {}
    return message if isinstance(message, dict) else {}


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
            elif "->" in line.split(" ", 2)[1:2]:
                continue  # a REST response of NAME.0 (its conf lists), before the connection
            else:
                return
