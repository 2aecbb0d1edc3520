"""OKX capture inference: the config a foreign recording (``OKX.*``) replays with.

The sent subscribe messages (``{"op":"subscribe","args":[{"channel","instId"}]}``) name the
instruments and channels; the market is that of the instruments (several on one connection, as
OKX allows, give a comma list). Files are read here line by line: the exchanges may not import
:mod:`hundi.capture` (the layering).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import msgspec

from hundi.exchanges.base import VenueConfig
from hundi.exchanges.okx.symbols import MARKETS, market_of
from hundi.records import Channel

_TS = r"\d+(?:\.\d+)?"
_OPEN = re.compile(rf"^(\S+) <-> {_TS}\s*$")
_SENT = re.compile(rf"^(\S+) <- {_TS}: (.*)$")
CHANNELS = {
    "trades": Channel.TRADES, "bbo-tbt": Channel.BBO, "books": Channel.BOOK,
    "tickers": Channel.TICKER, "mark-price": Channel.DERIVATIVE_TICKER,
    "funding-rate": Channel.DERIVATIVE_TICKER, "open-interest": Channel.DERIVATIVE_TICKER,
    "index-tickers": Channel.DERIVATIVE_TICKER, "liquidation-orders": Channel.LIQUIDATIONS,
}  # fmt: skip


def infer_capture(files: Sequence[Path], market: str | None) -> VenueConfig:
    """The config replaying ``files``; ValueError (one line) when they do not say enough."""
    symbols: dict[str, None] = {}
    channels: dict[Channel, None] = {}
    options: dict[str, str] = {}
    opened = False
    for path in files:
        for _url, message in _setup(path):
            if message is None:
                opened = True
                continue
            try:
                sent = msgspec.json.decode(message)
            except msgspec.DecodeError:
                continue
            if not isinstance(sent, dict) or sent.get("op") != "subscribe":
                continue
            for arg in sent.get("args") or []:
                if not isinstance(arg, dict):
                    continue
                name = str(arg.get("channel", ""))
                inst = arg.get("instId")
                if name.startswith("candle"):
                    channels[Channel.CANDLES] = None
                    options["candle_interval"] = name.removeprefix("candle")
                elif name in CHANNELS:
                    channels[CHANNELS[name]] = None
                else:
                    continue
                if isinstance(inst, str) and name != "index-tickers":
                    symbols[inst] = None
    if not opened:
        raise ValueError("cannot infer the OKX config: the files open no connection")
    if not symbols:
        raise ValueError("cannot infer OKX instruments and channels: no subscribe messages")
    try:
        found = {market_of(s) for s in symbols}
    except ValueError as e:
        raise ValueError(str(e)) from None
    inferred = ",".join(x for x in MARKETS if x in found)
    if market is not None and set(market.split(",")) != found:
        raise ValueError(f"the OKX recording is of market {inferred}, not {market}")
    return VenueConfig(
        market=inferred, symbols=tuple(symbols), channels=(*channels, Channel.EVENTS),
        options=options,
    )  # fmt: skip


def _setup(path: Path) -> Iterator[tuple[str, str | None]]:
    """(url, None) per connection opened, (url, message) per message sent."""
    with path.open(encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\r\n")
            if m := _OPEN.match(line):
                yield m[1], None
            elif m := _SENT.match(line):
                yield m[1], m[2]
