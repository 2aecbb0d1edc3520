"""Binance futures derivatives data: mark price + funding, open interest, liquidations, listings.

* ``derivative_ticker``: the ``<symbol>@markPrice@1s`` stream (mark ``p``, index ``i``, funding
  rate ``r``, next funding time ``T``; option ``mark_price_stream=markPrice`` for the 3 s stream)
  merged with REST ``openInterest``, polled per symbol every ``open_interest_interval_s``
  (weight 1 each, a *side* request of the shared :class:`RestScheduler`, so it counts against
  the weight budget, at most half of it: ``marketdata._open_interest_interval_s``). Each
  message or answer emits one full record: the other fields keep their latest value (NaN
  until first known). Open interest is in the market's size unit (USD-M: the base asset;
  COIN-M: contracts); its value is, USD-M, open interest times the latest mark price (quote
  asset), COIN-M open interest times ``contractSize`` (USD).
* ``liquidations``: ``<symbol>@forceOrder``. Binance documents it as a snapshot: "only the
  latest one liquidation order within 1000ms will be pushed", so records are ``sampled``.
* ``instruments``: ``exchangeInfo`` (spot, USD-M, COIN-M) turned into
  :class:`~hundi.records.Instrument` rows for the configured symbols, at start and, re-polled
  every ``instruments_interval_s``, whenever a row changes.
"""

from __future__ import annotations

import logging
import math

from msgspec import Raw

from hundi.exchanges.base import (
    DECODE_ERRORS,
    RecordSink,
    RejectedFrame,
    RestPurpose,
    RestRequest,
    RestResponse,
)
from hundi.exchanges.binance.book import MS
from hundi.exchanges.binance.markets import BinanceMarket
from hundi.exchanges.binance.messages import (
    FORCE_ORDER_DECODER,
    MARK_PRICE_DECODER,
    OPEN_INTEREST_DECODER,
    ForceOrderMsg,
    ListedSymbol,
    MarkPriceMsg,
    OpenInterestMsg,
)
from hundi.exchanges.binance.ratelimit import RestScheduler
from hundi.exchanges.binance.routes import Route
from hundi.exchanges.binance.symbols import SymbolInfo
from hundi.exchanges.validity import check_amount, check_positive, check_time, check_trade, invalid
from hundi.records import (
    BASE,
    BUY,
    CONTRACTS,
    SAMPLED,
    SELL,
    DerivativeTicker,
    Instrument,
    Liquidation,
)

log = logging.getLogger("hundi.exchanges.binance")

NAN = math.nan
MARK_PRICE = "markPrice"  # DerivativeTicker.source of a mark-price message
OPEN_INTEREST = "openInterest"  # ... of a REST open-interest answer
PERPETUAL_TYPES = frozenset(("PERPETUAL", "TRADIFI_PERPETUAL"))
# Binance lists perpetuals with a delivery date in 2100 (4133404800000 ms): not an expiry.
NO_DELIVERY_MS = 4_000_000_000_000


def size_unit(market: BinanceMarket) -> str:
    """Unit of sizes on ``market``: contracts on COIN-M (inverse), the base asset elsewhere."""
    return CONTRACTS if market.inverse else BASE


class DerivativeState:
    """The latest value of every derivative-ticker field of one symbol (NaN: not yet known)."""

    __slots__ = (
        "contract_size",
        "funding_rate",
        "index_price",
        "inverse",
        "mark_price",
        "next_funding_time",
        "open_interest",
        "unit",
    )

    def __init__(self, inverse: bool) -> None:
        self.inverse = inverse
        self.unit = CONTRACTS if inverse else BASE
        self.mark_price = NAN
        self.index_price = NAN
        self.funding_rate = NAN
        self.next_funding_time = 0
        self.open_interest = NAN
        self.contract_size = NAN  # COIN-M: USD per contract, from exchangeInfo

    def record(
        self, exchange: str, symbol: str, native: str, source: str, ts: int, recv_ns: int
    ) -> DerivativeTicker:
        oi = self.open_interest
        value = oi * self.contract_size if self.inverse else oi * self.mark_price
        return DerivativeTicker(
            exchange=exchange, symbol=symbol, native_symbol=native, ts=ts, recv_ts=recv_ns,
            source=source, mark_price=self.mark_price, index_price=self.index_price,
            funding_rate=self.funding_rate, predicted_funding_rate=NAN,
            next_funding_time=self.next_funding_time, open_interest=oi,
            open_interest_value=value, size_unit=self.unit,
        )  # fmt: skip


def _funding_rate(text: str) -> float:
    """``r``: a decimal string, or ``""`` where there is no funding (COIN-M deliveries)."""
    if not text:
        return NAN
    try:
        rate = float(text)
    except ValueError:
        raise invalid("funding rate", text) from None
    if not -1.0 <= rate <= 1.0:  # NaN fails too; Binance caps rates far below 100 %
        raise invalid("funding rate", text)
    return rate


class MarkPriceRoute(Route):
    """``markPrice``: updates the symbol's :class:`DerivativeState` and emits it whole."""

    __slots__ = ("state",)
    EVENT_TYPE = "markPriceUpdate"
    decode = MARK_PRICE_DECODER.decode

    def __init__(self, exchange: str, symbol: str, native: str, state: DerivativeState) -> None:
        super().__init__(exchange, symbol, native)
        self.state = state

    def handle(self, raw: Raw, recv_ns: int, out: RecordSink) -> None:
        m: MarkPriceMsg = self.decode(raw)
        ts = m.event_time * MS
        check_time("event time", ts, recv_ns)
        check_positive("mark price", m.mark)
        check_amount("index price", m.index)
        rate = _funding_rate(m.funding_rate)
        state = self.state
        state.mark_price = m.mark
        state.index_price = m.index if m.index > 0 else NAN  # 0: not published
        state.funding_rate = rate
        state.next_funding_time = m.next_funding_time * MS
        out.derivative_ticker.append(
            state.record(self.exchange, self.symbol, self.native, MARK_PRICE, ts, recv_ns)
        )


class ForceOrderRoute(Route):
    """``forceOrder``: one sampled liquidation record per message."""

    __slots__ = ("unit",)
    EVENT_TYPE = "forceOrder"
    decode = FORCE_ORDER_DECODER.decode

    def __init__(self, exchange: str, symbol: str, native: str, unit: str) -> None:
        super().__init__(exchange, symbol, native)
        self.unit = unit

    def handle(self, raw: Raw, recv_ns: int, out: RecordSink) -> None:
        m: ForceOrderMsg = self.decode(raw)
        o = m.o
        if o.symbol != self.native:
            raise RejectedFrame("invalid_message", f"forceOrder of {o.symbol} on {self.native}")
        if o.side == "SELL":
            side = SELL
        elif o.side == "BUY":
            side = BUY
        else:
            raise invalid("side", o.side)
        ts = o.trade_time * MS
        check_trade(o.price, o.qty, ts, recv_ns)
        check_amount("filled", o.filled)
        check_amount("average price", o.avg_price)
        out.liquidations.append(Liquidation(
            exchange=self.exchange, symbol=self.symbol, native_symbol=self.native, ts=ts,
            recv_ts=recv_ns, side=side, price=o.price, size=o.qty, size_unit=self.unit,
            completeness=SAMPLED,
            detail=f"status={o.status} filled={o.filled:g} avg_price={o.avg_price:g} "
            f"type={o.order_type}/{o.time_in_force}",
            position=0,  # one liquidation a message
        ))  # fmt: skip


class OpenInterestPoll:
    """REST ``openInterest`` of each symbol every ``interval_ns`` (side requests)."""

    def __init__(
        self,
        exchange: str,
        market: BinanceMarket,
        rest_base: str,
        scheduler: RestScheduler,
        interval_ns: int,
    ) -> None:
        self.exchange = exchange
        self.market = market
        self.rest_base = rest_base
        self.scheduler = scheduler
        self.interval_ns = interval_ns
        self.weight = market.open_interest_weight
        self._symbols: dict[str, tuple[SymbolInfo, DerivativeState]] = {}  # by request key
        self._due_ns: dict[str, int] = {}  # by request key; absent: in flight

    def add(self, info: SymbolInfo, state: DerivativeState) -> None:
        key = f"{info.native}@{OPEN_INTEREST}"
        self._symbols[key] = (info, state)
        self._due_ns[key] = 0  # at start

    def owns(self, request: RestRequest) -> bool:
        return request.key in self._symbols

    def due_requests(self, now_ns: int) -> list[RestRequest]:
        requests = []
        scheduler = self.scheduler
        for key, due in list(self._due_ns.items()):
            if due > now_ns or not scheduler.may_send(key, self.weight, now_ns, side=True):
                continue
            scheduler.sent(key, self.weight, now_ns, side=True)
            del self._due_ns[key]
            native = self._symbols[key][0].native
            url = self.market.rest_url(OPEN_INTEREST, self.rest_base)
            requests.append(RestRequest(
                key=key, url=f"{url}?symbol={native}",
                weight=self.weight, purpose=RestPurpose.OTHER,
            ))  # fmt: skip
        return requests

    def next_wakeup_ns(self, now_ns: int) -> list[int]:
        scheduler = self.scheduler
        return [
            max(due, scheduler.earliest_ns(key, self.weight, now_ns, side=True))
            for key, due in self._due_ns.items()
        ]

    def receive_response(
        self, request: RestRequest, response: RestResponse, recv_ns: int, out: RecordSink
    ) -> None:
        key = request.key
        info, state = self._symbols[key]
        status = response.status
        msg: OpenInterestMsg | None = None
        if 200 <= status < 300:
            try:
                msg = OPEN_INTEREST_DECODER.decode(response.body)
                if msg.symbol != info.native:
                    raise RejectedFrame("invalid_message", f"open interest of {msg.symbol}")
                check_time("open interest time", msg.time * MS, recv_ns)
            except (*DECODE_ERRORS, RejectedFrame) as e:
                log.warning("%s open interest refused (%s); refetching", info.native, e)
                msg, status = None, 599
        self.scheduler.completed(key, status, response.headers, recv_ns, side=True)
        if msg is None:
            self._due_ns[key] = recv_ns  # again once the scheduler's back-off allows
            return
        self._due_ns[key] = recv_ns + self.interval_ns
        state.open_interest = msg.open_interest
        out.derivative_ticker.append(
            state.record(
                self.exchange, info.normalized, info.native, OPEN_INTEREST, msg.time * MS, recv_ns
            )
        )


def _filter_value(listed: ListedSymbol, filter_type: str) -> float:
    for f in listed.filters:
        if f.filter_type == filter_type:
            text = f.tick_size if filter_type == "PRICE_FILTER" else f.step_size
            try:
                return float(text) if text else NAN
            except ValueError:
                return NAN
    return NAN


def instrument_of(
    exchange: str, market: BinanceMarket, info: SymbolInfo, listed: ListedSymbol, recv_ns: int
) -> Instrument:
    """One ``exchangeInfo`` symbol as an :class:`Instrument` row."""
    if not market.futures:
        contract_type, expiry = "spot", 0
    elif (listed.contract_type or "") in PERPETUAL_TYPES:
        contract_type, expiry = "perpetual", 0
    else:
        contract_type = "future"
        delivery = listed.delivery_date
        expiry = delivery * MS if 0 < delivery < NO_DELIVERY_MS else 0
    contract_size = 1.0
    if market.inverse:  # USD per contract: only the listing says it (NaN: it did not)
        contract_size = NAN if listed.contract_size is None else float(listed.contract_size)
    settle = listed.margin_asset or (listed.base if market.inverse else listed.quote)
    return Instrument(
        exchange=exchange, symbol=info.normalized, native_symbol=info.native, ts=recv_ns,
        recv_ts=recv_ns, contract_type=contract_type, inverse=market.inverse,
        base_asset=listed.base, quote_asset=listed.quote, settle_asset=settle,
        contract_size=contract_size, size_unit=size_unit(market),
        tick_size=_filter_value(listed, "PRICE_FILTER"),
        lot_size=_filter_value(listed, "LOT_SIZE"), expiry=expiry,
        status=listed.listing_status,
    )  # fmt: skip


def _same(a: Instrument, b: Instrument) -> bool:
    """Equal but for the times (NaN tick or lot sizes compare equal)."""
    for name in Instrument.__struct_fields__:
        if name in ("ts", "recv_ts"):
            continue
        x, y = getattr(a, name), getattr(b, name)
        if x != y and not (isinstance(x, float) and math.isnan(x) and math.isnan(y)):
            return False
    return True


class InstrumentWatch:
    """Instrument rows of the configured symbols; emits those that are new or changed."""

    def __init__(
        self,
        exchange: str,
        market: BinanceMarket,
        symbols: dict[str, SymbolInfo],
        states: dict[str, DerivativeState],
        emit: bool,
    ) -> None:
        self.exchange = exchange
        self.market = market
        self.symbols = symbols
        self.states = states  # COIN-M contract sizes go there (open-interest value)
        self.emit = emit
        self._last: dict[str, Instrument] = {}

    def on_listing(self, listed: dict[str, ListedSymbol], recv_ns: int, out: RecordSink) -> None:
        for native, info in self.symbols.items():
            entry = listed.get(native)
            if entry is None:
                continue
            row = instrument_of(self.exchange, self.market, info, entry, recv_ns)
            state = self.states.get(native)
            if state is not None and self.market.inverse:
                state.contract_size = row.contract_size
            last = self._last.get(native)
            if last is not None and _same(last, row):
                continue
            self._last[native] = row
            if self.emit:
                out.instruments.append(row)
