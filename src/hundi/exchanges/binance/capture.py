"""Binance capture inference: which spot/USD-M/COIN-M config a foreign recording was made with.

The registered ``infer_capture`` of Binance (:class:`~hundi.exchanges.registry.Exchange`), used
by ``hundi replay`` for files that are not our own captures (ours carry a header, read
generically by :mod:`hundi.capture.infer`). The recordings say it with their connection URLs
(``/stream?streams=btcusdt@aggTrade/...``), their SUBSCRIBE messages, or, as a last resort, the
``configuration:`` line of the recordings' ``NAME.0`` file.

The files are read here, line by line, rather than through :mod:`hundi.capture` (which imports
the exchanges: the layering forbids the way back). Only the connection setup is needed: the
``URL <-> TS`` (opened) and ``URL <- TS: MESSAGE`` (sent) lines before the first received one.

The market is the URLs' host: ``fstream``/``/fapi/`` USD-M, ``dstream``/``/dapi/`` COIN-M,
anything else spot; REST lines (``URL -> TS: BODY``) count too, so a capture whose streams are
all in SUBSCRIBE messages still says its market through its snapshots.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import msgspec

from hundi.exchanges.base import VenueConfig
from hundi.records import Channel

_CHANNEL_OF_KIND = {
    "aggTrade": Channel.TRADES,
    "trade": Channel.TRADES,
    "bookTicker": Channel.BBO,
    "ticker": Channel.TICKER,
    "markPrice": Channel.DERIVATIVE_TICKER,
    "markPrice@1s": Channel.DERIVATIVE_TICKER,
    "forceOrder": Channel.LIQUIDATIONS,
}


def infer_capture(files: Sequence[Path], market: str | None) -> VenueConfig:
    """The config that replays the recordings ``files``; ValueError (one line) if they do not
    say enough or contradict ``market``."""
    urls: list[str] = []
    names: list[str] = []
    for path in files:
        for url, sent in _setup(path):
            if sent is None:
                urls.append(url)
                names += parse_qs(urlsplit(url).query).get("streams", [""])[0].split("/")
            else:
                names += _subscribed(sent)
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
            elif kind.startswith("markPrice"):
                options["mark_price_stream"] = kind
        else:
            continue
        symbols[stream_symbol.upper()] = None
        channels[channel] = None
    if not symbols:
        return _from_configuration_line(files, market)
    rest_urls = _rest_urls(files)
    found_market = _market_of(urls + rest_urls)
    if Channel.DERIVATIVE_TICKER in channels:
        # poll as the recording did, so that its answers are the ones asked for; none: no poll
        options["open_interest_interval_s"] = str(_open_interest_interval(files))
    if market is not None and market != found_market:
        # Replaying spot frames as USD-M (or the reverse) stores wrong symbols and no book:
        # the URLs say which market the capture is, so a different --market is an error.
        raise ValueError(
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


_TS = r"\d+(?:\.\d+)?"
_OPEN = re.compile(rf"^(\S+) <-> {_TS}\s*$")
_SENT = re.compile(rf"^(\S+) <- {_TS}: (.*)$")
_REST = re.compile(rf"^(https?://\S+) -> {_TS}: ")


def _rest_urls(files: Sequence[Path]) -> list[str]:
    """The REST URLs of the recordings' ``NAME.0``/``NAME.http.*`` files (their first lines:
    setup fetches and snapshots come first)."""
    urls = []
    for path in files:
        if ".ws." in path.name:
            continue
        with path.open(encoding="utf-8") as f:
            for n, line in enumerate(f):
                if m := _REST.match(line):
                    urls.append(m[1])
                if n >= 200:
                    break
    return urls


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


def _subscribed(data: str) -> list[str]:
    try:
        message = msgspec.json.decode(data)
    except msgspec.DecodeError:
        return []
    if isinstance(message, dict) and message.get("method") == "SUBSCRIBE":
        params = message.get("params")
        if isinstance(params, list):
            return [p for p in params if isinstance(p, str)]
    return []


_REST_TIMED = re.compile(rf"^(https?://\S+) -> ({_TS}): ")


def _open_interest_interval(files: Sequence[Path]) -> int:
    """Whole seconds between two recorded ``openInterest`` answers of one symbol (the
    shortest, at least 1), or 0 when the recording holds none."""
    last: dict[str, float] = {}
    gaps: list[float] = []
    for path in files:
        if ".ws." in path.name:
            continue
        with path.open(encoding="utf-8") as f:
            for line in f:
                if "/openInterest" not in line[:300] or not (m := _REST_TIMED.match(line)):
                    continue
                symbol = parse_qs(urlsplit(m[1]).query).get("symbol", [""])[0]
                ts = float(m[2])
                if symbol in last and ts > last[symbol]:
                    gaps.append(ts - last[symbol])
                last[symbol] = ts
    if not last:
        return 0
    return max(1, int(min(gaps))) if gaps else 60


def _url_market(url: str) -> str | None:
    """The market one URL belongs to: dstream/dapi ``coinm``, fstream/fapi ``usdm``, Binance's
    spot hosts or ``/api/v3/`` ``spot``; None for a URL that does not say (a local simulator's
    WebSocket)."""
    host = urlsplit(url).netloc
    if "dstream" in host or "/dapi/" in url:
        return "coinm"
    if "fstream" in host or "/fapi/" in url:
        return "usdm"
    if "/api/v3/" in url or host.startswith(("stream.binance", "api.binance", "data-")):
        return "spot"
    return None


def _market_of(urls: list[str]) -> str:
    """``coinm`` for dstream/dapi URLs, ``usdm`` for fstream/fapi ones, else ``spot``.

    One replay is one market: files of several (a ``BINANCE.*`` beside a ``BINANCE_FUTURES.*``)
    would name one market's symbols by the other's rules (spot ``BLZETH`` as ``BLZ-ETH-PERP``),
    so they are a ValueError, not a guess."""
    by_market: dict[str, str] = {}
    for url in urls:
        found = _url_market(url)
        if found is not None:
            by_market.setdefault(found, urlsplit(url)._replace(query="").geturl())
    if len(by_market) > 1:
        seen = ", ".join(f"{m} ({u})" for m, u in sorted(by_market.items()))
        raise ValueError(
            f"the capture mixes Binance markets: {seen}; replay each market's files separately"
        )
    return next(iter(by_market), "spot")


_CONFIGURATION_CHANNELS = {
    "trades": Channel.TRADES,
    "l2_book": Channel.BOOK,
    "ticker": Channel.BBO,  # cryptofeed's Binance ticker is the bookTicker stream
    "candles": Channel.CANDLES,
}


def _native_of(symbol: str, coinm: bool) -> str:
    """``BTC-USDT`` → ``BTCUSDT``; ``BTC-USDT-PERP`` → ``BTCUSDT`` (USD-M) or, COIN-M,
    ``BTC-USD-PERP`` → ``BTCUSD_PERP`` and ``LINK-USD-20211231`` → ``LINKUSD_211231``."""
    base, quote, *rest = [*symbol.split("-"), ""]
    suffix = rest[0]
    if not coinm:
        return f"{base}{quote}" if suffix in ("", "PERP") else f"{base}{quote}_{suffix[-6:]}"
    return f"{base}{quote}_{suffix[-6:] if suffix.isdigit() else 'PERP'}"


def _from_configuration_line(files: Sequence[Path], market: str | None) -> VenueConfig:
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
                # a dapi REST line says COIN-M; so does cryptofeed's COIN-M file name
                coinm = _market_of(_rest_urls(files)) == "coinm" or any(
                    p.name.startswith("BINANCE_DELIVERY.") for p in files
                )
                for name, listed in configured.items():
                    if name in _CONFIGURATION_CHANNELS:
                        channels[_CONFIGURATION_CHANNELS[name]] = None
                        for symbol in listed:
                            symbols[_native_of(symbol, coinm)] = None
                perp = any(s.endswith("-PERP") for v in configured.values() for s in v)
                found = "coinm" if coinm else "usdm" if perp else "spot"
                if market is not None and market != found:
                    raise ValueError(
                        f"the capture's configuration line lists Binance {found} symbols, not "
                        f"{market}: drop --market or give --market {found}"
                    )
                return VenueConfig(
                    market=found,
                    symbols=tuple(symbols),
                    channels=(*channels, Channel.EVENTS),
                )
    raise ValueError(
        "cannot infer symbols and channels from the capture (no stream URLs, SUBSCRIBE "
        "messages or configuration line)"
    )
