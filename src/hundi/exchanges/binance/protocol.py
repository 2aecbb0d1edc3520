"""The Binance venue protocol (spot, USD-M and COIN-M futures), sans-I/O: two halves and a
market row.

* The market's row, :class:`~hundi.exchanges.binance.markets.BinanceMarket` (table
  :data:`~hundi.exchanges.binance.markets.MARKETS`), holds everything that differs between
  markets: hosts, REST paths and weights, limits, naming and book rules, the user-data kind.
* The market-data half, :class:`~hundi.exchanges.binance.marketdata.MarketData`: public
  streams, order books, ``exchangeInfo`` checks and trade backfills, and on futures the
  derivatives data (:mod:`hundi.exchanges.binance.derivatives`: mark price + open interest,
  liquidations, instruments).
* The user-data half (channels ``orders`` and ``fills``), a
  :class:`~hundi.exchanges.binance.userdata.UserDataStream` of the market's kind: one
  authenticated connection (key ``userdata``) covering every symbol of the account, not just
  the configured ones.

:class:`BinanceProtocol` checks the configuration, builds the halves and routes to them:
connection events by connection key, REST answers by their request's
:class:`~hundi.exchanges.base.RestPurpose` (the listen key's to the user-data half, the rest to
the market-data half).

Options (``VenueConfig.options``, strings) are listed and checked in
:mod:`hundi.exchanges.binance.options`.
"""

from __future__ import annotations

import random

from hundi.exchanges.base import (
    BookStatus,
    FrameStatus,
    Opening,
    RecordSink,
    RestPurpose,
    RestRequest,
    RestResponse,
    StreamSpec,
    VenueConfig,
    VenueProtocol,
)
from hundi.exchanges.binance.book import OrderBook
from hundi.exchanges.binance.marketdata import EXCHANGE, EXCHANGE_INFO_KEY, MarketData
from hundi.exchanges.binance.markets import MARKETS
from hundi.exchanges.binance.options import BinanceOptions
from hundi.exchanges.binance.symbols import KNOWN_QUOTE_ASSETS, SymbolInfo, normalize, parse_market
from hundi.exchanges.binance.userdata import UserDataStream
from hundi.exchanges.credentials import Credentials
from hundi.records import Channel, Event

__all__ = ["EXCHANGE_INFO_KEY", "PRIVATE_CHANNELS", "BinanceProtocol"]

PRIVATE_CHANNELS = frozenset((Channel.ORDERS, Channel.FILLS))


class BinanceProtocol(VenueProtocol):
    """See the module docstring. Build it with :func:`hundi.exchanges.binance.BinanceVenue`."""

    exchange = EXCHANGE

    def __init__(
        self,
        config: VenueConfig,
        rng: random.Random | None = None,
        credentials: Credentials | None = None,
    ) -> None:
        self.market = parse_market(config.market)
        market = MARKETS[self.market]
        opts = BinanceOptions.parse(config.options, market)
        if not config.symbols:
            raise ValueError("no symbols configured")
        wanted = tuple(dict.fromkeys(config.channels))
        private = [c for c in wanted if c in PRIVATE_CHANNELS]
        channels = tuple(c for c in wanted if c not in PRIVATE_CHANNELS)
        if not private and not [c for c in channels if c is not Channel.EVENTS]:
            raise ValueError("no market-data channels configured")
        if private and credentials is None and config.authenticate:
            raise ValueError("the orders and fills channels need API credentials")

        self._quotes = quotes = KNOWN_QUOTE_ASSETS + opts.quote_assets
        self._symbol_map = opts.symbol_map
        self._symbols: dict[str, SymbolInfo] = {}
        for native in config.symbols:
            info = normalize(native, self.market, quotes, opts.symbol_map)
            self._symbols[info.native] = info
        self._account_symbols: dict[str, str] = {}

        rest_base = config.rest_endpoint or market.rest_base
        self.market_data = MarketData(
            market,
            opts,
            self._symbols,
            channels,
            config.endpoint or market.ws_base,
            rest_base,
            rng,
        )
        self.userdata: UserDataStream | None = None
        if private:
            self.userdata = market.user_data.for_market(
                market, credentials, self._account_symbol, opts, config.endpoint, rest_base
            )
        # the halves, in the order their connections, requests and reconnects are listed
        self._halves: tuple[VenueProtocol, ...] = (self.market_data,)
        self._by_conn: dict[str, VenueProtocol] = {}
        if self.userdata is not None:
            self._halves += (self.userdata,)
            self._by_conn = dict.fromkeys(
                (s.key for s in self.userdata.connections()), self.userdata
            )
        else:
            # Market data only, the usual collector: frames go straight to that half, with no
            # router call per frame (measured A/B in one process: ~7 % of a bookTicker frame).
            self.receive = self.market_data.receive  # type: ignore[method-assign]

    def _half(self, conn_key: str) -> VenueProtocol:
        """The half a connection belongs to (unknown keys: the market data's to reject)."""
        return self._by_conn.get(conn_key, self.market_data)

    # ------------------------------------------------------------------ names
    @property
    def invalid_symbols(self) -> list[str]:
        """Configured natives that exchangeInfo says we cannot collect."""
        return self.market_data.invalid_symbols

    def normalize_symbol(self, native: str) -> str:
        info = self._symbols.get(native.upper())
        return info.normalized if info is not None else native

    def _account_symbol(self, native: str) -> str:
        """Account events name any symbol of the account: normalize it once, keep it."""
        known = self._account_symbols.get(native)
        if known is None:
            info = self._symbols.get(native)
            if info is not None:
                known = info.normalized
            else:
                try:
                    info = normalize(native, self.market, self._quotes, self._symbol_map)
                    known = info.normalized
                except ValueError:
                    known = native  # an unknown quote asset: keep the native name
            self._account_symbols[native] = known
        return known

    # ------------------------------------------------------------------ connections
    def connections(self) -> list[StreamSpec]:
        return [spec for half in self._halves for spec in half.connections()]

    def opening(self, spec: StreamSpec, now_ns: int) -> Opening | None:
        return self._half(spec.key).opening(spec, now_ns)

    def redact(self, conn_key: str, data: bytes) -> bytes:
        return self._half(conn_key).redact(conn_key, data)

    def on_open(self, conn_key: str, now_ns: int, out: RecordSink) -> None:
        self._half(conn_key).on_open(conn_key, now_ns, out)

    def on_close(self, conn_key: str, now_ns: int, out: RecordSink) -> None:
        self._half(conn_key).on_close(conn_key, now_ns, out)

    def redact_sent(self, conn_key: str, message: bytes) -> bytes:
        return self._half(conn_key).redact_sent(conn_key, message)

    def replayed_sent(self, conn_key: str, data: bytes, now_ns: int) -> None:
        self._half(conn_key).replayed_sent(conn_key, data, now_ns)

    def take_reconnects(self) -> list[str]:
        return [key for half in self._halves for key in half.take_reconnects()]

    def receive(self, conn_key: str, data: bytes, recv_ns: int, out: RecordSink) -> FrameStatus:
        return self._half(conn_key).receive(conn_key, data, recv_ns, out)

    # ------------------------------------------------------------------ REST
    def due_requests(self, now_ns: int) -> list[RestRequest]:
        return [request for half in self._halves for request in half.due_requests(now_ns)]

    def receive_response(
        self, request: RestRequest, response: RestResponse, recv_ns: int, out: RecordSink
    ) -> None:
        if request.purpose is RestPurpose.SESSION_KEY:
            if self.userdata is not None:
                self.userdata.receive_response(request, response, recv_ns, out)
            return
        self.market_data.receive_response(request, response, recv_ns, out)

    def finishing_requests(self, now_ns: int) -> list[RestRequest] | None:
        return self.market_data.finishing_requests(now_ns)

    def abandon(self, now_ns: int, out: RecordSink) -> None:
        self.market_data.abandon(now_ns, out)

    def owed_ids(self) -> int:
        return self.market_data.owed_ids()

    def next_wakeup_ns(self) -> int | None:
        times = [t for half in self._halves if (t := half.next_wakeup_ns()) is not None]
        return min(times) if times else None

    # ------------------------------------------------------------------ status
    def recover(self, gap: Event, now_ns: int, out: RecordSink) -> bool:
        return self.market_data.recover(gap, now_ns, out)

    def books(self) -> list[BookStatus]:
        return self.market_data.books()

    def book(self, native: str) -> OrderBook:
        """The live book state machine of one symbol (tests, status screens)."""
        return self.market_data.book(native)
