"""Coinbase capture inference: the config a foreign recording of the ws-feed was made with.

The recordings say it with their ``subscribe`` messages (``product_ids`` and ``channels``) on a
ws-feed host: today's ``ws-feed.exchange.coinbase.com`` or the former ``ws-feed.pro.coinbase.com``
(Coinbase Pro), which spoke the same protocol. Files are read line by line here (the layering
forbids importing :mod:`hundi.capture`); only the connection setup before the first received
line is read.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from urllib.parse import urlsplit

import msgspec

from hundi.exchanges.base import VenueConfig
from hundi.records import Channel

HOSTS = ("ws-feed.exchange.coinbase.com", "ws-feed.pro.coinbase.com")
_CHANNELS = {
    "matches": Channel.TRADES,
    "ticker": Channel.TICKER,
    "level2": Channel.BOOK,
    "level2_batch": Channel.BOOK,
}

_TS = r"\d+(?:\.\d+)?"
_OPEN = re.compile(rf"^(\S+) <-> {_TS}\s*$")
_SENT = re.compile(rf"^(\S+) <- {_TS}: (.*)$")


def infer_capture(files: Sequence[Path], market: str | None) -> VenueConfig:
    """The config that replays ``files``; ValueError (one line) if they do not say enough."""
    if market not in (None, "spot"):
        raise ValueError(f"coinbase has one market, spot, not {market!r}")
    hosts: set[str] = set()
    symbols: dict[str, None] = {}
    channels: dict[Channel, None] = {}
    options: dict[str, str] = {}
    for path in files:
        for url, sent in _setup(path):
            hosts.add(urlsplit(url).hostname or "")
            if sent is None:
                continue
            for name, products in _subscribed(sent):
                channel = _CHANNELS.get(name)
                if channel is None:
                    continue
                channels[channel] = None
                symbols.update(dict.fromkeys(products))
                if name == "level2":
                    options["level2_channel"] = "level2"
    foreign = sorted(h for h in hosts if h not in HOSTS)
    if foreign:
        raise ValueError(f"not a Coinbase ws-feed capture: it connects to {', '.join(foreign)}")
    if not symbols or not channels:
        raise ValueError(
            "cannot infer products and channels from the capture (no Coinbase subscribe message)"
        )
    return VenueConfig(
        market="spot",
        symbols=tuple(symbols),
        channels=(*channels, Channel.EVENTS),
        options=options,
    )


def _setup(path: Path) -> Iterator[tuple[str, str | None]]:
    """(url, None) per connection opened, (url, message) per message sent, up to the first
    line of anything else."""
    with path.open(encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\r\n")
            if not line.strip() or line.startswith("configuration:"):
                continue
            if m := _OPEN.match(line):
                yield m[1], None
            elif m := _SENT.match(line):
                yield m[1], m[2]
            elif " -> " in line.split(":", 1)[0] or line.startswith("http"):
                continue  # a REST answer of NAME.0 (the product listing)
            else:
                return


def _subscribed(data: str) -> list[tuple[str, list[str]]]:
    """(channel, products) of a ``subscribe`` message, in both of its documented forms."""
    try:
        message = msgspec.json.decode(data)
    except msgspec.DecodeError:
        return []
    if not isinstance(message, dict) or message.get("type") != "subscribe":
        return []
    products = [p for p in message.get("product_ids") or [] if isinstance(p, str)]
    found = []
    for channel in message.get("channels") or []:
        if isinstance(channel, str):
            found.append((channel, products))
        elif isinstance(channel, dict) and isinstance(channel.get("name"), str):
            listed = channel.get("product_ids") or products
            found.append((channel["name"], [p for p in listed if isinstance(p, str)]))
    return found
