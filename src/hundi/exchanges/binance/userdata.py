"""Binance user-data streams (own orders and fills), sans-I/O.

Spot (since listen keys were retired on 2026-02-20): one WebSocket-API connection
(``/ws-api/v3``); on every open it sends ``userDataStream.subscribe.signature`` with ``apiKey``,
``timestamp`` and the HMAC-SHA256 ``signature``; events then arrive as
``{"subscriptionId": n, "event": {...}}``. ``eventStreamTerminated`` ends the subscription: we
reconnect (make-before-break) and subscribe again.

USD-M (futures markets, :class:`FuturesUserData`): ``POST /fapi/v1/listenKey`` (header
``X-MBX-APIKEY``) yields a 60-minute key, kept alive with ``PUT`` every
``listen_key_keepalive_s`` (30 min); error -1125 (unknown key) or a ``listenKeyExpired`` event
makes us create a new key and reconnect. Events arrive bare on ``/private/ws/<listenKey>``.

Each market's row (:mod:`hundi.exchanges.binance.markets`) names its user-data class; the
protocol runs it as the user-data half, next to the market-data half
(:mod:`hundi.exchanges.binance.marketdata`), on the connection :data:`USERDATA_KEY`.

Neither venue replays account events missed while disconnected, so a dropped user-data
connection records a ``gap`` event on the ``orders`` channel: stored orders are complete except
where such an event says otherwise. A refused key or signature records ``auth_failed``, logs one
clear line and retries with :class:`~hundi.exchanges.authretry.AuthRetry` (capped, counted); the
market-data connections are untouched.
"""

from __future__ import annotations

import contextlib
import logging
from abc import abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec

from hundi.exchanges.authretry import AuthRetry, PrivateSession
from hundi.exchanges.base import (
    DECODE_ERRORS,
    REDACTED,
    FrameStatus,
    Opening,
    RecordSink,
    RejectedFrame,
    RestPurpose,
    RestRequest,
    RestResponse,
    StreamSpec,
    VenueProtocol,
    decode_rejection,
)
from hundi.exchanges.binance.auth import load_ed25519, signed_logon_params, signed_ws_params
from hundi.exchanges.binance.userdata_messages import (
    ACCOUNT_EVENT_TYPE_DECODER,
    ACCOUNT_POSITION_DECODER,
    ACCOUNT_UPDATE_DECODER,
    API_ERROR_DECODER,
    API_REPLY_DECODER,
    BALANCE_UPDATE_DECODER,
    EVENT_TIME_DECODER,
    EXECUTION_REPORT_DECODER,
    LISTEN_KEY_DECODER,
    ORDER_TRADE_UPDATE_DECODER,
    SENT_REQUEST_DECODER,
    TRADE_LITE_DECODER,
    ApiError,
)
from hundi.exchanges.credentials import Credentials
from hundi.records import BUY, SELL, EventKind, Fill, Order

if TYPE_CHECKING:
    from hundi.exchanges.binance.markets import BinanceMarket
    from hundi.exchanges.binance.options import BinanceOptions

log = logging.getLogger("hundi.exchanges.binance")

EXCHANGE = "binance"
USERDATA_KEY = "userdata"  # connection key of the private stream
LISTEN_KEY = "listenKey"  # REST key (name) of listen-key requests
MS = 1_000_000
S = 1_000_000_000

# Binance codes meaning "these credentials / this signature are not accepted".
AUTH_ERROR_CODES = frozenset((-1002, -1021, -1022, -2008, -2014, -2015))
LISTEN_KEY_UNKNOWN = -1125
MAX_PENDING = 16  # subscription requests awaiting a reply that we still recognise
# Opens of one listen key that never got connected: the key is probably dead, ask for one.
MAX_OPENS_PER_KEY = 3

STATUSES = {
    "NEW": "new",
    "PENDING_NEW": "new",
    "PARTIALLY_FILLED": "partially_filled",
    "FILLED": "filled",
    "CANCELED": "canceled",
    "PENDING_CANCEL": "pending_cancel",
    "REJECTED": "rejected",
    "EXPIRED": "expired",
    "EXPIRED_IN_MATCH": "expired",
}
# Account events we understand and check, but do not store (balances, OCO lists, positions).
SPOT_UNSTORED = frozenset(("listStatus", "externalLockUpdate"))
USDM_UNSTORED = frozenset((
    "MARGIN_CALL", "ACCOUNT_CONFIG_UPDATE", "STRATEGY_UPDATE", "GRID_UPDATE",
    "CONDITIONAL_ORDER_TRIGGER_REJECT", "ALGO_UPDATE",
))  # fmt: skip


# An account event's handler: (payload, recv_ns, out) -> status; decode errors are mapped by the
# caller, :meth:`UserDataStream._account_event`.
EventHandler = Callable[[bytes, int, RecordSink], FrameStatus]


def _checked(decoder: msgspec.json.Decoder[Any]) -> EventHandler:
    """The handler of an event we check (decode) but do not store."""

    def check(payload: bytes, recv_ns: int, out: RecordSink) -> FrameStatus:
        decoder.decode(payload)
        return FrameStatus.FILTERED

    return check


def _side(text: str) -> int:
    if text == "BUY":
        return BUY
    if text == "SELL":
        return SELL
    raise RejectedFrame("invalid_message", f"unknown order side {text!r}")


class UserDataStream(VenueProtocol):
    """The user-data half of the venue, one connection (:data:`USERDATA_KEY`): what spot and
    futures share (auth back-off, gap and auth events); subclasses speak each market's way."""

    exchange = EXCHANGE

    def __init__(
        self,
        credentials: Credentials | None,
        normalize: Callable[[str], str],
        retry: AuthRetry,
        spec: StreamSpec,
    ) -> None:
        """``credentials`` None (replays only): frames are parsed, nothing is authenticated."""
        self.credentials = credentials
        self.session = PrivateSession(EXCHANGE, "Binance", credentials, retry, log)
        self.normalize = normalize
        self.spec = spec
        self.subscribed = False
        self.now_ns = 0
        # account events by type (``e``); the unstored ones are only filtered, not even decoded
        self.handlers: dict[str, EventHandler] = {}
        self.unstored: frozenset[str] = frozenset()
        self.orders = 0
        self.fills = 0

    @classmethod
    @abstractmethod
    def for_market(
        cls,
        market: BinanceMarket,
        credentials: Credentials | None,
        normalize: Callable[[str], str],
        opts: BinanceOptions,
        endpoint: str | None,
        rest_base: str,
    ) -> UserDataStream:
        """The stream of ``market``; ``endpoint``: the configured WS base, if any."""

    # -- the VenueProtocol of the one connection --------------------------------------------
    def connections(self) -> list[StreamSpec]:
        return [self.spec]

    @abstractmethod
    def opening(self, spec: StreamSpec, now_ns: int) -> Opening | None: ...

    def due_requests(self, now_ns: int) -> list[RestRequest]:
        self.now_ns = max(self.now_ns, now_ns)  # the I/O loop's clock, polled often
        return []

    def receive_response(
        self, request: RestRequest, response: RestResponse, recv_ns: int, out: RecordSink
    ) -> None:
        return None

    def next_wakeup_ns(self) -> int | None:
        return self.session.next_wakeup_ns()

    def on_open(self, conn_key: str, now_ns: int, out: RecordSink) -> None:
        self.now_ns = max(self.now_ns, now_ns)

    def on_close(self, conn_key: str, now_ns: int, out: RecordSink) -> None:
        self.now_ns = max(self.now_ns, now_ns)
        if self.subscribed:
            self.subscribed = False
            self.session.event(
                out,
                EventKind.GAP,
                now_ns,
                "user-data stream closed; Binance does not "
                "replay account events missed until it is subscribed again",
            )

    def redact(self, conn_key: str, data: bytes) -> bytes:
        """Credentials (Binance echoes the API key on ``session.logon``) and listen keys."""
        return self.session.redact(data, self.tokens())

    def tokens(self) -> tuple[str, ...]:
        """Bearer tokens of the stream (listen keys) that captures must not show either."""
        return ()

    def take_reconnects(self) -> list[str]:
        return [self.spec.key] if self.take_reconnect() else []

    def take_reconnect(self) -> bool:
        return self.session.take_reconnect(self.now_ns)

    # -- helpers ----------------------------------------------------------------------------
    def _account_event(self, payload: bytes, recv_ns: int, out: RecordSink) -> FrameStatus:
        """One account event: its type picks the handler that decodes it strictly typed."""
        try:
            kind = ACCOUNT_EVENT_TYPE_DECODER.decode(payload).e
            handle = self.handlers.get(kind)
            if handle is not None:
                return handle(payload, recv_ns, out)
        except DECODE_ERRORS as e:
            raise decode_rejection(payload, e) from None
        if kind in self.unstored:
            return FrameStatus.FILTERED
        raise RejectedFrame("unknown_event", kind or "(no event type)")

    def _ended(self, payload: bytes, recv_ns: int, out: RecordSink, detail: str) -> FrameStatus:
        """Binance ended the stream (an event with just its time): a gap, then a reconnect."""
        event_ms = EVENT_TIME_DECODER.decode(payload).event_time
        self.session.reconnect_wanted = True
        self.session.event(out, EventKind.GAP, event_ms * MS if event_ms else recv_ns, detail)
        return FrameStatus.PROCESSED

    def _order(
        self,
        out: RecordSink,
        recv_ns: int,
        native: str,
        ts: int,
        *,
        order_id: int,
        client_order_id: str,
        side: str,
        order_type: str,
        time_in_force: str,
        venue_status: str,
        execution: str,
        price: float,
        stop_price: float,
        quantity: float,
        filled: float,
        average_price: float,
        last_price: float,
        last_quantity: float,
        fee: float,
        fee_asset: str,
        trade_id: int,
        maker: bool,
        reject_reason: str,
        created_ts: int,
    ) -> None:
        symbol = self.normalize(native)
        signed_side = _side(side)
        oid = str(order_id)
        out.orders.append(Order(
            exchange=EXCHANGE, symbol=symbol, native_symbol=native, ts=ts, recv_ts=recv_ns,
            order_id=oid, client_order_id=client_order_id, side=signed_side,
            order_type=order_type, time_in_force=time_in_force,
            status=STATUSES.get(venue_status, venue_status.lower()), venue_status=venue_status,
            execution=execution, price=price, stop_price=stop_price, quantity=quantity,
            filled=filled, average_price=average_price, last_fill_price=last_price,
            last_fill_quantity=last_quantity, fee=fee, fee_asset=fee_asset, trade_id=trade_id,
            reject_reason=reject_reason, created_ts=created_ts,
        ))  # fmt: skip
        self.orders += 1
        if execution == "TRADE":
            out.fills.append(Fill(
                exchange=EXCHANGE, symbol=symbol, native_symbol=native, ts=ts, recv_ts=recv_ns,
                trade_id=trade_id, order_id=oid, client_order_id=client_order_id,
                side=signed_side, order_type=order_type, price=last_price,
                quantity=last_quantity, fee=fee, fee_asset=fee_asset, maker=maker,
            ))  # fmt: skip
            self.fills += 1


class SpotUserData(UserDataStream):
    """Spot: WebSocket API ``userDataStream.subscribe.signature`` (see the module docstring)."""

    def __init__(
        self,
        credentials: Credentials | None,
        normalize: Callable[[str], str],
        retry: AuthRetry,
        ws_api_base: str,
        recv_window_ms: int,
    ) -> None:
        url = ws_api_base.rstrip("/") + "/ws-api/v3"
        spec = StreamSpec(
            key=USERDATA_KEY, url=url, max_outgoing_per_s=5.0, private=True,
            # the WebSocket API pings every 3 minutes and an idle account sends nothing else
            stale_after_s=600.0,
        )  # fmt: skip
        super().__init__(credentials, normalize, retry, spec)
        self.recv_window_ms = recv_window_ms
        self._next_id = 0
        self._pending: dict[int, str] = {}  # request id -> "logon" | "subscribe"
        self.handlers = {
            "executionReport": self._execution,
            "outboundAccountPosition": _checked(ACCOUNT_POSITION_DECODER),
            "balanceUpdate": _checked(BALANCE_UPDATE_DECODER),
            "eventStreamTerminated": self._terminated,
        }
        self.unstored = SPOT_UNSTORED
        self._doomed: set[int] = set()  # subscribe ids whose logon was refused
        # Ed25519 keys log the session on, then subscribe without a signature
        self._ed25519: Any = None
        if credentials is not None and credentials.ed25519_pem is not None:
            self._ed25519 = load_ed25519(credentials.ed25519_pem.reveal())

    @classmethod
    def for_market(
        cls,
        market: BinanceMarket,
        credentials: Credentials | None,
        normalize: Callable[[str], str],
        opts: BinanceOptions,
        endpoint: str | None,
        rest_base: str,
    ) -> SpotUserData:
        ws_api_base = opts.private_endpoint or endpoint or market.private_ws_base
        return cls(credentials, normalize, opts.auth_retry, ws_api_base, opts.recv_window_ms)

    def _request(self, kind: str) -> int:
        self._next_id += 1
        self._pending[self._next_id] = kind
        while len(self._pending) > MAX_PENDING:  # replies lost with their connections
            del self._pending[next(iter(self._pending))]
        return self._next_id

    def redact_sent(self, conn_key: str, message: bytes) -> bytes:
        """A WebSocket-API request's id and method (no secret): what a replay needs to read
        its reply; the params (API key, signature) never reach a capture."""
        try:
            request = SENT_REQUEST_DECODER.decode(message)
        except DECODE_ERRORS:
            return REDACTED
        shown = {"id": request.id, "method": request.method, "params": "<redacted>"}
        return msgspec.json.encode(shown)

    def replayed_sent(self, conn_key: str, data: bytes, now_ns: int) -> None:
        """The live run's logon/subscribe requests (their ids): a replay reads a refusal as the
        live run did (an auth_failed event), not as an unknown server error (found by
        review: a replay of a refused run said ok)."""
        try:
            request = SENT_REQUEST_DECODER.decode(data)
        except DECODE_ERRORS:
            return
        kind = "logon" if request.method == "session.logon" else ""
        if request.method.startswith("userDataStream.subscribe"):
            kind = "subscribe"
        if kind and isinstance(request.id, int):
            self._pending[request.id] = kind
            self._next_id = max(self._next_id, request.id)

    def opening(self, spec: StreamSpec, now_ns: int) -> Opening | None:
        self.now_ns = max(self.now_ns, now_ns)
        if self.credentials is None or not self.session.retry.allowed(now_ns):
            return None
        encode = msgspec.json.encode
        timestamp = now_ns // MS
        if self._ed25519 is None:
            params = signed_ws_params(self.credentials, timestamp, self.recv_window_ms)
            method = "userDataStream.subscribe.signature"
            request = {"id": self._request("subscribe"), "method": method, "params": params}
            return Opening(self.spec.url, (encode(request),))
        logon = signed_logon_params(self.credentials, self._ed25519, timestamp, self.recv_window_ms)
        first = {"id": self._request("logon"), "method": "session.logon", "params": logon}
        then = {"id": self._request("subscribe"), "method": "userDataStream.subscribe"}
        return Opening(self.spec.url, (encode(first), encode(then)))

    def receive(self, conn_key: str, data: bytes, recv_ns: int, out: RecordSink) -> FrameStatus:
        self.now_ns = max(self.now_ns, recv_ns)
        try:
            reply = API_REPLY_DECODER.decode(data)
        except DECODE_ERRORS as e:
            raise decode_rejection(data, e) from None
        if reply.event:
            return self._account_event(reply.event, recv_ns, out)
        if reply.id is not None or reply.status is not None:
            return self._reply(reply.id, reply.status, reply.error, recv_ns, out)
        raise RejectedFrame("invalid_message", "neither an event nor a reply")

    def _reply(
        self,
        rid: int | str | None,
        status: int | None,
        error: msgspec.Raw,
        recv_ns: int,
        out: RecordSink,
    ) -> FrameStatus:
        kind = self._pending.pop(rid, "") if isinstance(rid, int) else ""
        if status == 200 and not error:
            if kind == "subscribe":
                self.subscribed = True
                self.session.retry.succeeded()
                log.info("Binance user-data stream subscribed")
            return FrameStatus.FILTERED
        problem = ApiError()
        if error:
            try:
                problem = API_ERROR_DECODER.decode(error)
            except DECODE_ERRORS:
                problem = ApiError(msg="unreadable error")
        why = f"status {status}, code {problem.code}: {problem.msg}"
        if kind == "subscribe" and isinstance(rid, int) and rid in self._doomed:
            self._doomed.discard(rid)
            return FrameStatus.FILTERED  # follows a refused logon, already reported
        if kind:
            if kind == "logon" and isinstance(rid, int):
                self._doomed.add(rid + 1)
            self.session.auth_failed(out, recv_ns, why)
            return FrameStatus.PROCESSED
        raise RejectedFrame("server_error", self.session.scrub(why))

    def _terminated(self, payload: bytes, recv_ns: int, out: RecordSink) -> FrameStatus:
        """The subscription ended: subscribe again on a fresh connection, at once."""
        detail = "eventStreamTerminated: subscription ended; subscribing again"
        status = self._ended(payload, recv_ns, out, detail)
        self.subscribed = False
        log.warning("Binance ended the user-data subscription; subscribing again")
        return status

    def _execution(self, payload: bytes, recv_ns: int, out: RecordSink) -> FrameStatus:
        msg = EXECUTION_REPORT_DECODER.decode(payload)
        filled = msg.filled
        self._order(
            out, recv_ns, msg.symbol, msg.transaction_time * MS,
            order_id=msg.order_id,
            # a cancel's ``c`` is the cancel request's id; ``C`` is the order's own
            client_order_id=msg.original_client_order_id or msg.client_order_id,
            side=msg.side, order_type=msg.order_type, time_in_force=msg.time_in_force,
            venue_status=msg.status, execution=msg.execution, price=msg.price,
            stop_price=msg.stop_price, quantity=msg.quantity, filled=filled,
            average_price=msg.filled_quote / filled if filled > 0 else 0.0,
            last_price=msg.last_price, last_quantity=msg.last_quantity,
            fee=msg.commission, fee_asset=msg.commission_asset or "",
            trade_id=msg.trade_id, maker=msg.maker,
            reject_reason="" if msg.reject_reason == "NONE" else msg.reject_reason,
            created_ts=msg.created_time * MS if msg.created_time else -1,
        )  # fmt: skip
        return FrameStatus.PROCESSED


class FuturesUserData(UserDataStream):
    """Futures (USD-M): listen key over REST, events on ``/private/ws/<key>`` (split paths) or
    ``/ws/<key>`` (see the module docstring)."""

    def __init__(
        self,
        credentials: Credentials | None,
        normalize: Callable[[str], str],
        retry: AuthRetry,
        ws_base: str,
        listen_key_url: str,
        split: bool,
        keepalive_s: float,
    ) -> None:
        self.ws_path = ws_base.rstrip("/") + ("/private/ws/" if split else "/ws/")
        spec = StreamSpec(
            key=USERDATA_KEY, url=self.ws_path.rstrip("/"), max_outgoing_per_s=10.0,
            private=True,
            # USD-M pings every 3 minutes and an idle account sends nothing in between
            stale_after_s=600.0,
        )  # fmt: skip
        super().__init__(credentials, normalize, retry, spec)
        self.rest_url = listen_key_url
        self.keepalive_ns = int(keepalive_s * S)
        self.listen_key: str | None = None
        self.connected_key: str | None = None  # the key of the open connection
        self.opens_on_key = 0  # opening() calls since the last successful open
        self.in_flight = False
        self.keepalive_due_ns = 0
        self.retry_at_ns = 0  # transport-failure back-off (auth refusals use ``retry``)
        self.transport_failures = 0
        self.handlers = {
            "ORDER_TRADE_UPDATE": self._execution,
            "TRADE_LITE": _checked(TRADE_LITE_DECODER),  # fills are stored from ORDER_TRADE_UPDATE
            "ACCOUNT_UPDATE": _checked(ACCOUNT_UPDATE_DECODER),
            "listenKeyExpired": self._expired,
        }
        self.unstored = USDM_UNSTORED

    @classmethod
    def for_market(
        cls,
        market: BinanceMarket,
        credentials: Credentials | None,
        normalize: Callable[[str], str],
        opts: BinanceOptions,
        endpoint: str | None,
        rest_base: str,
    ) -> FuturesUserData:
        return cls(
            credentials,
            normalize,
            opts.auth_retry,
            ws_base=opts.private_endpoint or endpoint or market.private_ws_base,
            listen_key_url=market.rest_url("listenKey", rest_base),
            split=opts.usdm_split and market.split_paths,
            keepalive_s=opts.listen_key_keepalive_s,
        )

    def opening(self, spec: StreamSpec, now_ns: int) -> Opening | None:
        self.now_ns = max(self.now_ns, now_ns)
        if self.listen_key is None:
            return None
        if self.opens_on_key >= MAX_OPENS_PER_KEY:
            # the stream keeps refusing this key (a key Binance forgot between keep-alives):
            # a POST returns the account's live key, or a new one
            log.warning("Binance refuses the listen key's stream; asking for the live key")
            self.listen_key = None
            self.opens_on_key = 0
            return None
        self.opens_on_key += 1
        self.connected_key = self.listen_key
        return Opening(self.ws_path + self.listen_key)

    def tokens(self) -> tuple[str, ...]:
        return tuple(k for k in (self.listen_key, self.connected_key) if k)

    def take_reconnect(self) -> bool:
        if self.session.reconnect_wanted and self.listen_key is not None:
            self.session.reconnect_wanted = False
            return True
        return False

    # -- REST ------------------------------------------------------------------------------
    def due_requests(self, now_ns: int) -> list[RestRequest]:
        self.now_ns = max(self.now_ns, now_ns)
        if self.in_flight or now_ns < self.retry_at_ns:
            return []
        if self.credentials is None:
            return []
        if self.listen_key is None:
            if not self.session.retry.allowed(now_ns):
                return []
            method = "POST"
        elif now_ns >= self.keepalive_due_ns:
            method = "PUT"
        else:
            return []
        self.in_flight = True
        headers = {"X-MBX-APIKEY": self.credentials.api_key.reveal()}
        return [
            RestRequest(
                LISTEN_KEY,
                self.rest_url,
                1,
                method,
                headers,
                private=True,
                purpose=RestPurpose.SESSION_KEY,
            )
        ]

    def next_wakeup_ns(self) -> int | None:
        if self.in_flight:
            return None
        if self.listen_key is None:
            if self.session.retry.gave_up:
                return None
            return max(self.session.retry.retry_at_ns, self.retry_at_ns)
        return max(self.keepalive_due_ns, self.retry_at_ns)

    def receive_response(
        self, request: RestRequest, response: RestResponse, recv_ns: int, out: RecordSink
    ) -> None:
        self.now_ns = max(self.now_ns, recv_ns)
        self.in_flight = False
        status = response.status
        if 200 <= status < 300:
            self.transport_failures = 0
            if request.method == "POST":
                try:
                    key = LISTEN_KEY_DECODER.decode(response.body).listen_key
                except DECODE_ERRORS:
                    self._transport_failed(recv_ns, "listen key reply without a listenKey")
                    return
                self.session.retry.succeeded()
                self.listen_key = key
                if self.connected_key is not None and self.connected_key != key:
                    # the open connection listens to a dead key
                    self.session.reconnect_wanted = True
            self.keepalive_due_ns = recv_ns + self.keepalive_ns
            return
        problem = ApiError()
        with contextlib.suppress(*DECODE_ERRORS):
            problem = API_ERROR_DECODER.decode(response.body)
        if problem.code == LISTEN_KEY_UNKNOWN:
            log.warning("Binance forgot the listen key (-1125); creating a new one")
            self.session.event(out, EventKind.GAP, recv_ns,
                               "listen key unknown (-1125); new key, reconnecting")  # fmt: skip
            self.listen_key = None
            self.session.reconnect_wanted = True
            return
        if status in (401, 403) or problem.code in AUTH_ERROR_CODES:
            self.listen_key = None
            why = f"status {status}, code {problem.code}: {problem.msg}"
            self.session.auth_failed(out, recv_ns, why)
            return
        self._transport_failed(recv_ns, f"status {status}")

    def _transport_failed(self, now_ns: int, why: str) -> None:
        """Network trouble or a 5xx: try again, doubling from 1 s to at most a minute."""
        self.transport_failures += 1
        delay = min(60.0, 2.0 ** (self.transport_failures - 1))
        self.retry_at_ns = now_ns + int(delay * S)
        log.warning("Binance listen key request failed (%s); retry in %.0fs", why, delay)

    # -- frames ----------------------------------------------------------------------------
    def on_open(self, conn_key: str, now_ns: int, out: RecordSink) -> None:
        super().on_open(conn_key, now_ns, out)
        self.opens_on_key = 0
        self.subscribed = True  # a listen-key stream delivers from the moment it opens

    def receive(self, conn_key: str, data: bytes, recv_ns: int, out: RecordSink) -> FrameStatus:
        self.now_ns = max(self.now_ns, recv_ns)
        self.opens_on_key = 0  # the stream works (also after a make-before-break switch)
        return self._account_event(data, recv_ns, out)

    def _expired(self, payload: bytes, recv_ns: int, out: RecordSink) -> FrameStatus:
        """The key lapsed: get a new one, then reconnect to it."""
        detail = "listenKeyExpired: new listen key, reconnecting"
        status = self._ended(payload, recv_ns, out, detail)
        self.listen_key = None
        self.in_flight = False
        self.retry_at_ns = 0
        log.warning("Binance listen key expired; creating a new one and reconnecting")
        return status

    def _execution(self, payload: bytes, recv_ns: int, out: RecordSink) -> FrameStatus:
        update = ORDER_TRADE_UPDATE_DECODER.decode(payload)
        o = update.order
        trade = o.execution == "TRADE"
        self._order(
            out, recv_ns, o.symbol, (o.trade_time or update.transaction_time) * MS,
            order_id=o.order_id, client_order_id=o.client_order_id, side=o.side,
            order_type=o.order_type, time_in_force=o.time_in_force, venue_status=o.status,
            execution=o.execution, price=o.price, stop_price=o.stop_price, quantity=o.quantity,
            filled=o.filled, average_price=o.average_price, last_price=o.last_price,
            last_quantity=o.last_quantity, fee=o.commission, fee_asset=o.commission_asset or "",
            trade_id=o.trade_id if trade else -1, maker=o.maker,
            reject_reason=o.expiry_reason if o.status == "EXPIRED" else "", created_ts=-1,
        )  # fmt: skip
        return FrameStatus.PROCESSED
