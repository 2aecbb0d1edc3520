"""The Bitfinex v2 venue protocol, sans-I/O: public market data and authenticated channel 0.

Market data (trades, books, ticker, candles on ``api-pub``) is
:class:`~hundi.exchanges.bitfinex.market.MarketData`'s, on its own connections; this module
routes their frames there and runs the authenticated connection itself (own orders and fills).

On every open of the authenticated connection (``wss://api.bitfinex.com/ws/2``) it sends the
``auth`` event (:mod:`hundi.exchanges.bitfinex.auth`, a fresh strictly increasing nonce each
time). Bitfinex answers ``{"event":"auth","status":"OK"|"FAILED",...}`` and then streams
channel 0: the open-order snapshot ``os`` and ``on``/``ou``/``oc`` order updates become
:class:`~hundi.records.Order` records, ``tu`` trade updates (the ones carrying the fee) become
:class:`~hundi.records.Fill` records (``te``, the same trade without its fee, is checked and
filtered), ``n`` notifications of refused order requests become ``rejected`` orders, and
positions, wallets, balances and heartbeats are filtered.

Replay on reconnect: Bitfinex re-sends the open-order snapshot after every authentication, so an
open order that changed while we were away is stored again (from ``os``), while one that did not
change is skipped; fills and orders that closed meanwhile are not replayed, so a dropped
connection records a ``gap`` event on ``orders``.

A refused key, signature or nonce records ``auth_failed`` and retries with a capped back-off
(:class:`~hundi.exchanges.authretry.AuthRetry`).
"""

from __future__ import annotations

import logging

import msgspec

from hundi.exchanges.authretry import AUTH_RETRY_OPTIONS, AuthRetry, PrivateSession
from hundi.exchanges.base import (
    DECODE_ERRORS,
    BookStatus,
    FrameStatus,
    Opening,
    RecordSink,
    RejectedFrame,
    RestRequest,
    RestResponse,
    StreamSpec,
    VenueConfig,
    VenueProtocol,
    decode_rejection,
)
from hundi.exchanges.bitfinex.auth import NonceClock, auth_message
from hundi.exchanges.bitfinex.market import MARKET_OPTION_HELP, PUBLIC_CHANNELS, MarketData
from hundi.exchanges.bitfinex.messages import (
    CHANNEL_DECODER,
    CONTROL_DECODER,
    NOTIFICATION_DECODER,
    ORDER_DECODER,
    ORDERS_DECODER,
    TRADE_DECODER,
    ControlMsg,
    OrderArray,
)
from hundi.exchanges.bitfinex.symbols import normalize
from hundi.exchanges.credentials import Credentials
from hundi.exchanges.validity import check_trade
from hundi.records import BUY, SELL, Channel, EventKind, Fill, Order

log = logging.getLogger("hundi.exchanges.bitfinex")

EXCHANGE = "bitfinex"
AUTH_KEY = "auth"  # connection key of the authenticated connection
AUTH_WS = "wss://api.bitfinex.com"
MS = 1_000_000
PRIVATE_CHANNELS = frozenset((Channel.ORDERS, Channel.FILLS))
ORDER_KINDS = frozenset(("on", "ou", "oc"))
# channel-0 messages we understand but do not store: positions, wallets, balances, margin and
# funding info, funding offers/credits/loans and their trades
UNSTORED = frozenset((
    "ps", "pn", "pu", "pc", "ws", "wu", "bu", "miu", "fiu", "te", "fte", "ftu",
    "fos", "fon", "fou", "foc", "fcs", "fcn", "fcu", "fcc", "fls", "fln", "flu", "flc",
))  # fmt: skip
RECONNECT_INFO = 20051  # "please reconnect": the server is going away
OPTION_HELP = {
    "private_endpoint": "authenticated WS base, default: --endpoint if given, else Bitfinex's",
    **AUTH_RETRY_OPTIONS,
    **MARKET_OPTION_HELP,
}


def order_status(text: str) -> str:
    """Bitfinex's status text (``EXECUTED @ 107.6(-0.2): was PARTIALLY FILLED @ ...``) →
    the normalized status; the text before ``was:`` is the current state."""
    current = text.split(" was:", 1)[0].strip().upper()
    if current.startswith("ACTIVE"):
        return "new"
    if current.startswith("EXECUTED"):
        return "filled"
    if current.startswith("PARTIALLY FILLED"):
        return "partially_filled"
    if current.startswith(("IOC CANCELED", "FILLORKILL CANCELED", "POSTONLY CANCELED")):
        return "expired"
    if current.startswith(("CANCELED", "INSUFFICIENT", "RSN_")):
        return "canceled"
    return current.lower() or "unknown"


class BitfinexProtocol(VenueProtocol):
    """See the module docstring. Build it with :func:`hundi.exchanges.bitfinex.BitfinexVenue`."""

    exchange = EXCHANGE

    def __init__(self, config: VenueConfig, credentials: Credentials | None) -> None:
        """``credentials`` None (replays only): frames are parsed, nothing is authenticated."""
        unknown = set(config.options) - set(OPTION_HELP)
        if unknown:
            raise ValueError(
                f"unknown Bitfinex option(s) {sorted(unknown)}; known: {sorted(OPTION_HELP)}"
            )
        channels = set(config.channels) - {Channel.EVENTS}
        unsupported = sorted(c.value for c in channels - PRIVATE_CHANNELS - PUBLIC_CHANNELS)
        if unsupported:
            known = sorted(c.value for c in PUBLIC_CHANNELS | PRIVATE_CHANNELS)
            raise ValueError(
                f"Bitfinex does not serve {', '.join(unsupported)} (it serves {', '.join(known)})"
            )
        if not channels:
            raise ValueError("no channels configured")
        public = frozenset(channels & PUBLIC_CHANNELS)
        self.market = MarketData(config, public) if public else None
        self.private = bool(channels & PRIVATE_CHANNELS)
        if self.private and credentials is None and config.authenticate:
            raise ValueError("the orders and fills channels need API credentials")
        if credentials is not None and credentials.ed25519_pem is not None:
            raise ValueError("Bitfinex keys are HMAC keys: set BITFINEX_API_SECRET, not a key file")
        self.credentials = credentials
        retry = AuthRetry.from_options(config.options)
        self.session = PrivateSession(EXCHANGE, "Bitfinex", credentials, retry, log)
        base = config.options.get("private_endpoint") or config.endpoint or AUTH_WS
        self.auth_spec = StreamSpec(
            key=AUTH_KEY,
            url=base.rstrip("/") + "/ws/2",
            max_outgoing_per_s=5.0,
            private=True,
            stale_after_s=60.0,  # heartbeats every 15 s
        )
        self.nonces = NonceClock()
        self.authenticated = False
        self._now_ns = 0
        # the last stored state of each open order: skip unchanged ``os`` replays
        self._open_orders: dict[int, tuple[str, float, float]] = {}

    # -- connections --------------------------------------------------------------------------
    def connections(self) -> list[StreamSpec]:
        specs = [self.auth_spec] if self.private else []
        if self.market is not None:
            specs += self.market.connections()
        return specs

    def books(self) -> list[BookStatus]:
        return self.market.books() if self.market is not None else []

    def normalize_symbol(self, native: str) -> str:
        return normalize(native)

    def opening(self, spec: StreamSpec, now_ns: int) -> Opening | None:
        self._now_ns = max(self._now_ns, now_ns)
        if spec.key != AUTH_KEY:
            return Opening(spec.url, spec.subscribe)
        if self.credentials is None or not self.session.retry.allowed(now_ns):
            return None
        return Opening(spec.url, (auth_message(self.credentials, self.nonces.next(now_ns)),))

    def redact(self, conn_key: str, data: bytes) -> bytes:
        return self.session.redact(data)

    def on_open(self, conn_key: str, now_ns: int, out: RecordSink) -> None:
        self._now_ns = max(self._now_ns, now_ns)
        if self.market is not None and self.market.owns(conn_key):
            self.market.on_open(conn_key, now_ns, out)

    def on_close(self, conn_key: str, now_ns: int, out: RecordSink) -> None:
        self._now_ns = max(self._now_ns, now_ns)
        if self.market is not None and self.market.owns(conn_key):
            self.market.on_close(conn_key, now_ns, out)
            return
        if conn_key == AUTH_KEY and self.authenticated:
            self.authenticated = False
            detail = (
                "authenticated connection closed; Bitfinex re-sends open orders on "
                "re-auth, not fills or closed orders"
            )
            self.session.event(out, EventKind.GAP, now_ns, detail)

    def take_reconnects(self) -> list[str]:
        asked = self.market.take_reconnects() if self.market is not None else []
        if self.session.take_reconnect(self._now_ns):
            asked.append(AUTH_KEY)
        return asked

    def take_messages(self) -> list[tuple[str, bytes]]:
        return self.market.take_messages() if self.market is not None else []

    def finishing_requests(self, now_ns: int) -> list[RestRequest] | None:
        return self.market.finishing_requests(now_ns) if self.market is not None else None

    def owed_ids(self) -> int:
        return self.market.owed_ids() if self.market is not None else 0

    def abandon(self, now_ns: int, out: RecordSink) -> None:
        if self.market is not None:
            self.market.abandon(now_ns, out)

    def due_requests(self, now_ns: int) -> list[RestRequest]:
        self._now_ns = max(self._now_ns, now_ns)  # the I/O loop's clock, polled often
        return self.market.due_requests(now_ns) if self.market is not None else []

    def receive_response(
        self, request: RestRequest, response: RestResponse, recv_ns: int, out: RecordSink
    ) -> None:
        if self.market is not None:
            self.market.receive_response(request, response, recv_ns, out)

    def next_wakeup_ns(self) -> int | None:
        wakeups = [self.session.next_wakeup_ns()]
        if self.market is not None:
            wakeups.append(self.market.next_wakeup_ns())
        found = [w for w in wakeups if w is not None]
        return min(found) if found else None

    # -- frames -------------------------------------------------------------------------------
    def receive(self, conn_key: str, data: bytes, recv_ns: int, out: RecordSink) -> FrameStatus:
        self._now_ns = max(self._now_ns, recv_ns)
        if conn_key != AUTH_KEY and self.market is not None and self.market.owns(conn_key):
            return self.market.receive(conn_key, data, recv_ns, out)
        try:
            if data[:1] == b"{":
                return self._control(CONTROL_DECODER.decode(data), recv_ns, out)
            msg = CHANNEL_DECODER.decode(data)
            if msg.chan_id != 0:
                raise RejectedFrame("unknown_channel", str(msg.chan_id))
            kind = msg.kind
            if kind == "hb":
                return FrameStatus.FILTERED
            if kind in ORDER_KINDS:
                self._order(ORDER_DECODER.decode(msg.payload), kind, recv_ns, out)
                return FrameStatus.PROCESSED
            if kind == "tu":
                self._fill(msg.payload, recv_ns, out)
                return FrameStatus.PROCESSED
            if kind == "os":
                return self._snapshot(msg.payload, recv_ns, out)
            if kind == "n":
                return self._notification(msg.payload, recv_ns, out)
            if kind == "te":
                TRADE_DECODER.decode(msg.payload)  # stored from ``tu``, which has the fee
                return FrameStatus.FILTERED
        except DECODE_ERRORS as e:
            raise decode_rejection(data, e) from None
        if kind in UNSTORED:
            return FrameStatus.FILTERED
        raise RejectedFrame("unknown_event", kind or "(no type)")

    def _control(self, msg: ControlMsg, recv_ns: int, out: RecordSink) -> FrameStatus:
        if msg.event == "auth":
            if msg.status == "OK":
                self.authenticated = True
                self.session.retry.succeeded()
                log.info("Bitfinex authenticated")
                return FrameStatus.FILTERED
            self.session.auth_failed(out, recv_ns, f"code {msg.code}: {msg.msg}")
            return FrameStatus.PROCESSED
        if msg.event == "info":
            if msg.code == RECONNECT_INFO:
                self.session.reconnect_wanted = True
            return FrameStatus.FILTERED
        if msg.event in ("conf", "pong"):
            return FrameStatus.FILTERED
        if msg.event == "error":
            raise RejectedFrame("server_error", self.session.scrub(f"code {msg.code}: {msg.msg}"))
        raise RejectedFrame("unknown_event", msg.event)

    def _snapshot(self, payload: msgspec.Raw, recv_ns: int, out: RecordSink) -> FrameStatus:
        """Open orders after (re)authentication: store those that changed since last seen."""
        orders = ORDERS_DECODER.decode(payload)
        before = len(out.orders)
        for order in orders:
            if order.id is not None and self._open_orders.get(order.id) == _state(order):
                continue
            self._order(order, "os", recv_ns, out)
        return FrameStatus.PROCESSED if len(out.orders) > before else FrameStatus.FILTERED

    def _order(
        self,
        o: OrderArray,
        execution: str,
        recv_ns: int,
        out: RecordSink,
        status: str | None = None,
        reject_reason: str = "",
    ) -> None:
        quantity = abs(o.amount_orig)
        filled = round(quantity - abs(o.amount), 12)
        venue_status = o.status or ""
        normalized = status or order_status(venue_status)
        if o.id is not None:
            if normalized in ("new", "partially_filled"):
                self._open_orders[o.id] = _state(o)
            else:
                self._open_orders.pop(o.id, None)
        ts_ms = o.mts_update or o.mts_create
        out.orders.append(Order(
            exchange=EXCHANGE, symbol=normalize(o.symbol), native_symbol=o.symbol,
            ts=ts_ms * MS if ts_ms else recv_ns, recv_ts=recv_ns,
            order_id="" if o.id is None else str(o.id),
            client_order_id="" if o.cid is None else str(o.cid),
            side=BUY if o.amount_orig > 0 else SELL, order_type=o.order_type, time_in_force="",
            status=normalized, venue_status=venue_status, execution=execution,
            price=o.price or 0.0, stop_price=o.price_aux_limit or 0.0, quantity=quantity,
            filled=filled, average_price=o.price_avg or 0.0, last_fill_price=0.0,
            last_fill_quantity=0.0, fee=0.0, fee_asset="", trade_id=-1,
            reject_reason=reject_reason,
            created_ts=o.mts_create * MS if o.mts_create else -1,
        ))  # fmt: skip

    def _fill(self, payload: msgspec.Raw, recv_ns: int, out: RecordSink) -> None:
        t = TRADE_DECODER.decode(payload)
        ts = t.mts_create * MS
        check_trade(t.exec_price, abs(t.exec_amount), ts, recv_ns)  # docs/validity.md
        out.fills.append(Fill(
            exchange=EXCHANGE, symbol=normalize(t.symbol), native_symbol=t.symbol,
            ts=ts, recv_ts=recv_ns, trade_id=t.id, order_id=str(t.order_id),
            client_order_id="" if t.cid is None else str(t.cid),
            side=BUY if t.exec_amount > 0 else SELL, order_type=t.order_type or "",
            price=t.exec_price, quantity=abs(t.exec_amount),
            fee=-(t.fee or 0.0),  # Bitfinex reports a paid fee as a negative amount
            fee_asset=t.fee_currency or "", maker=t.maker == 1,
        ))  # fmt: skip

    def _notification(self, payload: msgspec.Raw, recv_ns: int, out: RecordSink) -> FrameStatus:
        """A refused order request (``on-req`` with status ERROR/FAILURE) is a rejected order."""
        n = NOTIFICATION_DECODER.decode(payload)
        if n.type == "on-req" and n.status in ("ERROR", "FAILURE") and n.info:
            order = ORDER_DECODER.decode(n.info)
            self._order(order, "n", recv_ns, out, status="rejected", reject_reason=n.text)
            return FrameStatus.PROCESSED
        return FrameStatus.FILTERED


def _state(order: OrderArray) -> tuple[str, float, float]:
    return (order.status or "", order.amount, order.price or 0.0)
