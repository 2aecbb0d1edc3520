"""What venue configuration produced a capture, so ``hundi replay`` needs no flags.

Our captures say it in their header. Foreign recordings say it with their connection URLs
(``/stream?streams=btcusdt@aggTrade/...``), their SUBSCRIBE messages, or, as a last resort, the
``configuration:`` line of the recordings' ``NAME.0`` file.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import msgspec

from hundi.capture.events import CaptureKind
from hundi.capture.format import VenueHeader
from hundi.capture.reader import expand, headers, is_ours, read_file
from hundi.exchanges.base import VenueConfig
from hundi.records import Channel


class InferenceError(ValueError):
    """The capture does not say enough; the message says which flag to pass."""


def config_of_header(venue: VenueHeader) -> VenueConfig:
    return VenueConfig(
        market=venue.market,
        symbols=tuple(venue.symbols),
        channels=tuple(Channel(c) for c in venue.channels),
        endpoint=venue.endpoint,
        rest_endpoint=venue.rest_endpoint,
        options=dict(venue.options),
    )


def infer_config(paths: Iterable[Path], exchange: str, market: str | None) -> VenueConfig:
    """The venue config of a capture (ours: header; recordings: streams)."""
    files = expand(paths)
    ours = headers(files)
    if ours:
        venues = {(v.exchange, v.market): v for h in ours for v in h.venues}
        candidates = [
            v
            for (ex, mk), v in venues.items()
            if ex == exchange and (market is None or mk == market)
        ]
        if len(candidates) == 1:
            return config_of_header(candidates[0])
        if not candidates:
            raise InferenceError(
                f"the capture holds no {exchange} {market or ''} venue; it holds "
                + ", ".join(f"{ex} {mk}" for ex, mk in venues)
            )
        raise InferenceError(
            "the capture holds several venues ("
            + ", ".join(v.market for v in candidates)
            + "); pick one with --market"
        )
    if exchange != "binance":
        raise InferenceError(f"cannot infer a {exchange} configuration from recordings")
    return _binance_from_recordings([p for p in files if not is_ours(p)], market)


_CHANNEL_OF_KIND = {
    "aggTrade": Channel.TRADES,
    "trade": Channel.TRADES,
    "bookTicker": Channel.BBO,
    "ticker": Channel.TICKER,
}


def _binance_from_recordings(files: list[Path], market: str | None) -> VenueConfig:
    urls: list[str] = []
    names: list[str] = []
    for path in files:
        for event in read_file(path):
            if event.kind is CaptureKind.OPEN:
                urls.append(event.url)
                names += parse_qs(urlsplit(event.url).query).get("streams", [""])[0].split("/")
            elif event.kind is CaptureKind.SENT:
                names += _subscribed(event.data)
            else:
                break  # connection setup precedes data
    symbols: dict[str, None] = {}
    channels: dict[Channel, None] = {}
    options: dict[str, str] = {}
    for name in filter(None, names):
        stream_symbol, _, kind = name.partition("@")
        if kind.startswith("depth"):
            channel = Channel.BOOK
        elif kind.startswith("kline_"):
            channel = Channel.CANDLES
            options["kline_interval"] = kind.removeprefix("kline_")
        elif kind in _CHANNEL_OF_KIND:
            channel = _CHANNEL_OF_KIND[kind]
            if kind == "trade":
                options["trade_stream"] = "trade"
        else:
            continue
        symbols[stream_symbol.upper()] = None
        channels[channel] = None
    if not symbols:
        return _binance_from_configuration_line(files, market)
    found_market = _market_of(urls)
    if market is not None and market != found_market:
        # Replaying spot frames as USD-M (or the reverse) stores wrong symbols and no book:
        # the URLs say which market the capture is, so a different --market is an error.
        raise InferenceError(
            f"the capture is Binance {found_market} (its URLs: {', '.join(sorted(set(urls)))}), "
            f"not {market}: drop --market or give --market {found_market}"
        )
    if found_market == "usdm" and any(urlsplit(u).path.rstrip("/") == "/stream" for u in urls):
        options["usdm_split"] = "false"  # a legacy single-path connection
    return VenueConfig(
        market=found_market,
        symbols=tuple(symbols),
        channels=(*channels, Channel.EVENTS),
        options=options,
    )


def _subscribed(data: bytes) -> list[str]:
    try:
        message = msgspec.json.decode(data)
    except msgspec.DecodeError:
        return []
    if isinstance(message, dict) and message.get("method") == "SUBSCRIBE":
        params = message.get("params")
        if isinstance(params, list):
            return [p for p in params if isinstance(p, str)]
    return []


def _market_of(urls: list[str]) -> str:
    usdm = any("fstream" in urlsplit(u).netloc or "/fapi/" in u for u in urls)
    return "usdm" if usdm else "spot"


_CONFIGURATION_CHANNELS = {
    "trades": Channel.TRADES,
    "l2_book": Channel.BOOK,
    "ticker": Channel.BBO,  # cryptofeed's Binance ticker is the bookTicker stream
    "candles": Channel.CANDLES,
}


def _binance_from_configuration_line(files: list[Path], market: str | None) -> VenueConfig:
    for path in files:
        with path.open(encoding="utf-8") as f:
            for line in f:
                if not line.startswith("configuration:"):
                    continue
                try:
                    configured = msgspec.json.decode(line.partition(":")[2])
                except msgspec.DecodeError:
                    break
                symbols: dict[str, None] = {}
                channels: dict[Channel, None] = {}
                for name, listed in configured.items():
                    if name in _CONFIGURATION_CHANNELS:
                        channels[_CONFIGURATION_CHANNELS[name]] = None
                        for symbol in listed:
                            symbols[symbol.removesuffix("-PERP").replace("-", "")] = None
                perp = any(s.endswith("-PERP") for v in configured.values() for s in v)
                found = "usdm" if perp else "spot"
                if market is not None and market != found:
                    raise InferenceError(
                        f"the capture's configuration line lists Binance {found} symbols, not "
                        f"{market}: drop --market or give --market {found}"
                    )
                return VenueConfig(
                    market=found,
                    symbols=tuple(symbols),
                    channels=(*channels, Channel.EVENTS),
                )
    raise InferenceError(
        "cannot infer symbols and channels from the capture (no stream URLs, SUBSCRIBE "
        "messages or configuration line)"
    )
