"""Bitstamp capture inference: which config a foreign recording was made with.

The registered ``infer_capture`` (used by ``hundi replay`` and the recording tests for files
that are not our own captures). A Bitstamp recording says what it subscribed to with its
``bts:subscribe`` messages (``diff_order_book_<pair>``, ``live_trades_<pair>``,
``order_book_<pair>``), sent right after the connection opened. The files are read here, line
by line: the layering forbids importing :mod:`hundi.capture`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import msgspec

from hundi.exchanges.base import VenueConfig
from hundi.records import Channel

# longest first: ``diff_order_book_`` ends with ``order_book_``
_PREFIXES = (
    ("diff_order_book_", Channel.BOOK),
    ("live_trades_", Channel.TRADES),
    ("order_book_", Channel.BBO),
)

_TS = r"\d+(?:\.\d+)?"
_OPEN = re.compile(rf"^(\S+) <-> {_TS}\s*$")
_SENT = re.compile(rf"^(\S+) <- {_TS}: (.*)$")


def infer_capture(files: Sequence[Path], market: str | None) -> VenueConfig:
    """The config that replays the recordings ``files``; ValueError (one line) if they do not
    say enough or ask for a market Bitstamp does not have."""
    if market not in (None, "spot"):
        raise ValueError(f"Bitstamp has only a spot market, not {market}: drop --market")
    symbols: dict[str, None] = {}
    channels: dict[Channel, None] = {}
    for path in files:
        for message in _sent(path):
            channel = _subscribed_channel(message)
            for prefix, kind in _PREFIXES:
                if channel.startswith(prefix):
                    symbols[channel.removeprefix(prefix)] = None
                    channels[kind] = None
                    break
    if not symbols:
        raise ValueError(
            "cannot infer pairs and channels from the capture (no bts:subscribe messages)"
        )
    return VenueConfig(market="spot", symbols=tuple(symbols), channels=(*channels, Channel.EVENTS))


def _sent(path: Path) -> Iterator[str]:
    """Messages sent during the connection setup, up to the first line of anything else."""
    with path.open(encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\r\n")
            if not line.strip() or line.startswith("configuration:") or _OPEN.match(line):
                continue
            if m := _SENT.match(line):
                yield m[2]
            else:
                return


def _subscribed_channel(data: str) -> str:
    """The channel of a ``bts:subscribe`` message, or ""."""
    try:
        message = msgspec.json.decode(data)
    except msgspec.DecodeError:
        return ""
    if not isinstance(message, dict) or message.get("event") != "bts:subscribe":
        return ""
    payload = message.get("data")
    channel = payload.get("channel") if isinstance(payload, dict) else None
    return channel if isinstance(channel, str) else ""
