"""Bitstamp WebSocket v2 market data, sans-I/O: trades, the L2 book and the top-100 BBO.

One connection to ``wss://ws.bitstamp.net`` carries every pair's channels, subscribed with
``{"event":"bts:subscribe","data":{"channel":"<channel>_<pair>"}}``:

* ``live_trades_<pair>`` (event ``trade``) → ``trades``: trade ``id``, ``price_str``,
  ``amount_str``, taker side from ``type`` (0 buy, 1 sell), time from ``microtimestamp``;
* ``diff_order_book_<pair>`` (event ``data``) → ``book``, synced on the REST snapshot
  ``/api/v2/order_book/<pair>`` by microtimestamp (:mod:`hundi.exchanges.bitstamp.book`);
* ``order_book_<pair>`` (event ``data``, the top 100 levels per side) → ``bbo``: its best bid and
  ask, one row per push.

Control frames: ``bts:subscription_succeeded`` / ``bts:unsubscription_succeeded`` and
``bts:heartbeat`` answers are FILTERED; ``bts:request_reconnect`` (the server is going down
for maintenance and asks the client to reconnect within seconds) stores a ``shutdown`` event
and asks the I/O layer to reconnect (:meth:`BitstampProtocol.take_reconnects`); ``bts:error``
is rejected as ``server_error``.

At start the protocol fetches ``/api/v2/trading-pairs-info/`` once and stores an
``invalid_symbol`` event for each configured pair Bitstamp does not list, lists under another
name, or does not trade: Bitstamp accepts a subscription to an unknown pair and then sends
nothing.

Trade ids are one counter across all pairs, so a missing trade cannot be told from another
pair's; trades already stored (the same id again) are dropped, and a disconnect stores a
``gap`` event on the trades channel (``expected`` = the id after the last stored one).
"""

from __future__ import annotations

import logging

from hundi.exchanges.base import (
    DECODE_ERRORS,
    BookStatus,
    FrameStatus,
    RecordSink,
    RejectedFrame,
    RestPurpose,
    RestRequest,
    RestResponse,
    StreamSpec,
    VenueConfig,
    VenueProtocol,
    decode_rejection,
)
from hundi.exchanges.bitstamp.backfill import TradeBackfill, TradeIds
from hundi.exchanges.bitstamp.book import US, OrderBook
from hundi.exchanges.bitstamp.messages import (
    BOOK_DECODER,
    ENVELOPE_DECODER,
    ERROR_DECODER,
    PAIRS_DECODER,
    TRADE_DECODER,
    BookMsg,
    Envelope,
    PairInfo,
)
from hundi.exchanges.bitstamp.options import BitstampOptions
from hundi.exchanges.bitstamp.symbols import listed_name, normalize
from hundi.exchanges.validity import check_bbo, check_levels, check_time, check_trade
from hundi.records import BUY, SELL, Bbo, Channel, Event, EventKind, Trade

log = logging.getLogger("hundi.exchanges.bitstamp")

EXCHANGE = "bitstamp"
WS_URL = "wss://ws.bitstamp.net"
REST_URL = "https://www.bitstamp.net"
CONN = "public"  # the one connection's key
SUPPORTED = frozenset((Channel.TRADES, Channel.BOOK, Channel.BBO, Channel.EVENTS))
PAIRS_KEY = "trading-pairs-info"  # REST key of the listing request
NS = 1_000_000_000

TRADES_PREFIX = "live_trades_"
DIFF_PREFIX = "diff_order_book_"
TOP_PREFIX = "order_book_"
# longest first: ``diff_order_book_`` ends with ``order_book_``
_PREFIXES = (DIFF_PREFIX, TRADES_PREFIX, TOP_PREFIX)
_CHANNEL_PREFIX = {
    Channel.TRADES: TRADES_PREFIX,
    Channel.BOOK: DIFF_PREFIX,
    Channel.BBO: TOP_PREFIX,
}

SUBSCRIBED = "bts:subscription_succeeded"
UNSUBSCRIBED = "bts:unsubscription_succeeded"
HEARTBEAT = "bts:heartbeat"
RECONNECT = "bts:request_reconnect"
ERROR = "bts:error"


def subscribe_message(channel: str) -> bytes:
    return b'{"event":"bts:subscribe","data":{"channel":"%s"}}' % channel.encode()


def unsubscribe_message(channel: str) -> bytes:
    return b'{"event":"bts:unsubscribe","data":{"channel":"%s"}}' % channel.encode()


class BitstampProtocol(VenueProtocol):
    """Bitstamp spot market data for the configured pairs."""

    exchange = EXCHANGE

    def __init__(self, config: VenueConfig) -> None:
        if config.market not in ("spot", ""):
            raise ValueError(f"{EXCHANGE} has only a spot market, not {config.market!r}")
        unsupported = set(config.channels) - SUPPORTED
        if unsupported:
            raise ValueError(
                f"{EXCHANGE} does not serve {', '.join(sorted(c.value for c in unsupported))} "
                f"(it serves {', '.join(sorted(c.value for c in SUPPORTED))})"
            )
        if not config.symbols:
            raise ValueError(f"{EXCHANGE}: no symbols")
        self.config = config
        self.options = BitstampOptions.parse(config.options)
        # Bitstamp spells pairs in lower case; ``hundi collect`` upper-cases what users type
        self.symbols = {native.lower(): normalize(native.lower()) for native in config.symbols}
        self.channels = frozenset(config.channels)
        self.ws_url = config.endpoint or WS_URL
        self.rest_url = (config.rest_endpoint or REST_URL).rstrip("/")
        self._books = (
            {
                n: OrderBook(
                    exchange=EXCHANGE,
                    symbol=s,
                    native=n,
                    max_buffer=self.options.max_buffer,
                    quiet_confirm_ns=self.options.quiet_confirm_ns,
                    stale_wait_ns=self.options.stale_wait_ns,
                    backoff_cap_ns=int(self.options.backoff_cap_s * NS),
                )
                for n, s in self.symbols.items()
            }
            if Channel.BOOK in self.channels
            else {}
        )
        self._trade_ids = {n: TradeIds(self.options.trade_ids_kept) for n in self.symbols}
        self._backfill = TradeBackfill(
            exchange=EXCHANGE,
            rest_url=self.rest_url,
            symbols=self.symbols,
            trade_ids=self._trade_ids,
            delay_ns=self.options.backfill_delay_ns,
            backoff_cap_ns=int(self.options.backoff_cap_s * NS),
        )
        self._opened_us = 0  # when the current (or last) connection opened
        # channel name → (kind prefix, native), for every subscribed channel
        self._routes: dict[str, tuple[str, str]] = {
            f"{_CHANNEL_PREFIX[c]}{native}": (_CHANNEL_PREFIX[c], native)
            for c in (Channel.BOOK, Channel.TRADES, Channel.BBO)
            if c in self.channels
            for native in self.symbols
        }
        self._reconnects: list[str] = []
        self._messages: list[tuple[str, bytes]] = []  # to send now (unsubscribes)
        # pairs Bitstamp lists under another name: their data would carry a wrong symbol,
        # so they are unsubscribed and whatever still arrives for them is filtered
        self.dropped_pairs: set[str] = set()
        self._connected = False
        self._pairs_wanted = True  # the listing: not yet answered, not in flight
        self._pairs_not_before_ns = 0
        self._pairs_failures = 0
        self.invalid_symbols: list[str] = []
        # snapshot pacing: one request in flight per book, spaced, backed off on failure
        # native → (the request in flight, asked after the diff subscription was acknowledged,
        # when it was asked)
        self._in_flight: dict[str, tuple[RestRequest, bool, int]] = {}
        self._last_request_ns = -(10**18)
        self._not_before_ns: dict[str, int] = {}
        self._failures: dict[str, int] = {}
        self._now_ns = 0
        self.trades_dropped = 0  # trades already stored, seen again

    # ------------------------------------------------------------------ connections
    def connections(self) -> list[StreamSpec]:
        return [
            StreamSpec(
                CONN,
                self.ws_url,
                subscribe=tuple(
                    subscribe_message(channel)
                    for channel, (_, native) in self._routes.items()
                    if native not in self.dropped_pairs
                ),
                max_outgoing_per_s=self.options.max_outgoing_per_s,
            )
        ]

    def normalize_symbol(self, native: str) -> str:
        return self.symbols.get(native) or normalize(native.lower())

    def on_open(self, conn_key: str, now_ns: int, out: RecordSink) -> None:
        """A fresh connection after a close: books start over, owed trades are fetched once
        its subscription is live. An open without a close before it is a make-before-break
        switch (a ``bts:request_reconnect`` rollover) seen in a replay of our own capture: the
        live run heard of no break there (the I/O layer calls neither), so neither does this."""
        self._now_ns = max(self._now_ns, now_ns)
        if self._connected:
            return
        self._connected = True
        self._opened_us = now_ns // US
        for book in self._books.values():
            book.opened(now_ns, out)
        self._in_flight.clear()
        self._backfill.reopened(now_ns)

    def on_close(self, conn_key: str, now_ns: int, out: RecordSink) -> None:
        self._now_ns = max(self._now_ns, now_ns)
        self._connected = False
        self._trades_disconnected(now_ns, out)
        for book in self._books.values():
            book.disconnected(now_ns, out)
        self._in_flight.clear()

    def _trades_disconnected(self, now_ns: int, out: RecordSink) -> None:
        """Trades sent while no connection was open are missing: a ``gap`` per pair and break,
        and the hole is owed to the REST backfill (:mod:`hundi.exchanges.bitstamp.backfill`)."""
        if Channel.TRADES not in self.channels or not self._opened_us:
            return
        for native, ids in self._trade_ids.items():
            self._backfill.broke(native, self._opened_us)
            out.events.append(Event(
                exchange=EXCHANGE, symbol=self.symbols[native], native_symbol=native,
                ts=now_ns, recv_ts=now_ns, kind=EventKind.GAP.value,
                channel=Channel.TRADES.value, expected=ids.last + 1 if ids.last >= 0 else -1,
                received=-1,
                detail="disconnect: the trades until the stream is back are fetched over REST",
            ))  # fmt: skip

    def take_reconnects(self) -> list[str]:
        taken, self._reconnects = self._reconnects, []
        return taken

    def take_messages(self) -> list[tuple[str, bytes]]:
        taken, self._messages = self._messages, []
        return taken

    def _drop_pair(self, native: str) -> None:
        """Stop collecting ``native``: unsubscribe its channels, forget its book and trades."""
        self.dropped_pairs.add(native)
        for channel, (_, routed) in self._routes.items():
            if routed == native:
                self._messages.append((CONN, unsubscribe_message(channel)))
        self._books.pop(native, None)
        self._trade_ids.pop(native, None)
        self._backfill.owed.pop(native, None)
        self._in_flight.pop(native, None)

    # ------------------------------------------------------------------ frames
    def receive(self, conn_key: str, data: bytes, recv_ns: int, out: RecordSink) -> FrameStatus:
        try:
            envelope = ENVELOPE_DECODER.decode(data)
        except DECODE_ERRORS as e:
            raise decode_rejection(data, e) from None
        event = envelope.event
        if event == "data" or event == "trade":
            route = self._routes.get(envelope.channel)
            if route is None:
                raise self._unknown_channel(envelope.channel)
            prefix, native = route
            if native in self.dropped_pairs:
                return FrameStatus.FILTERED
            try:
                if prefix is DIFF_PREFIX and event == "data":
                    return self._diff(native, BOOK_DECODER.decode(envelope.data), recv_ns, out)
                if prefix is TRADES_PREFIX and event == "trade":
                    return self._trade(native, envelope, recv_ns, out)
                if prefix is TOP_PREFIX and event == "data":
                    return self._top(native, BOOK_DECODER.decode(envelope.data), recv_ns, out)
            except DECODE_ERRORS as e:
                raise decode_rejection(envelope.data, e) from None
            raise RejectedFrame("unknown_event", f"{event!r} on {envelope.channel}")
        return self._control(conn_key, envelope, recv_ns, out)

    def _unknown_channel(self, channel: str) -> RejectedFrame:
        for prefix in _PREFIXES:
            if channel.startswith(prefix):
                native = channel.removeprefix(prefix)
                if native not in self.symbols:
                    return RejectedFrame("unknown_symbol", channel)
                return RejectedFrame("unknown_stream", f"{channel} (not subscribed)")
        return RejectedFrame("unknown_stream", channel or "(no channel)")

    def _control(
        self, conn_key: str, envelope: Envelope, recv_ns: int, out: RecordSink
    ) -> FrameStatus:
        event = envelope.event
        if event == SUBSCRIBED:
            route = self._routes.get(envelope.channel)
            book = self._books.get(route[1]) if route is not None else None
            if book is not None and route is not None and route[0] is DIFF_PREFIX:
                book.subscribed()
            elif route is not None and route[0] is TRADES_PREFIX:
                self._backfill.subscribed(route[1], recv_ns)
            return FrameStatus.FILTERED
        if event in (UNSUBSCRIBED, HEARTBEAT):
            return FrameStatus.FILTERED
        if event == RECONNECT:
            out.events.append(Event(
                exchange=EXCHANGE, symbol="", native_symbol="", ts=recv_ns, recv_ts=recv_ns,
                kind=EventKind.SHUTDOWN.value, channel="", expected=-1, received=-1,
                detail=f"bts:request_reconnect on {conn_key}",
            ))  # fmt: skip
            if conn_key not in self._reconnects:
                self._reconnects.append(conn_key)
            return FrameStatus.PROCESSED
        if event == ERROR:
            try:
                error = ERROR_DECODER.decode(envelope.data)
            except DECODE_ERRORS:
                raise RejectedFrame(
                    "server_error", "bts:error without a readable message"
                ) from None
            raise RejectedFrame("server_error", f"code {error.code}: {error.message}"[:300])
        raise RejectedFrame("unknown_event", event or "(no event)")

    def _trade(self, native: str, envelope: Envelope, recv_ns: int, out: RecordSink) -> FrameStatus:
        t = TRADE_DECODER.decode(envelope.data)
        ts = t.microtimestamp * US
        check_trade(t.price, t.amount, ts, recv_ns)
        if t.type == 0:
            side = BUY
        elif t.type == 1:
            side = SELL
        else:
            raise RejectedFrame("invalid_field", f"trade type {t.type!r} (0 buy, 1 sell)")
        if not self._trade_ids[native].add(t.id, t.microtimestamp):
            self.trades_dropped += 1
            return FrameStatus.FILTERED  # stored already (the same trade sent again)
        out.trades.append(Trade(
            exchange=EXCHANGE, symbol=self.symbols[native], native_symbol=native, ts=ts,
            recv_ts=recv_ns, trade_id=t.id, price=t.price, size=t.amount, side=side,
            first_trade_id=t.id, last_trade_id=t.id,
        ))  # fmt: skip
        return FrameStatus.PROCESSED

    def _diff(self, native: str, msg: BookMsg, recv_ns: int, out: RecordSink) -> FrameStatus:
        check_levels("bid", msg.bids)
        check_levels("ask", msg.asks)
        check_time("microtimestamp", msg.microtimestamp * US, recv_ns)
        self._now_ns = max(self._now_ns, recv_ns)
        return self._books[native].on_diff(msg, recv_ns, out)

    def _top(self, native: str, msg: BookMsg, recv_ns: int, out: RecordSink) -> FrameStatus:
        ts = msg.microtimestamp * US
        bid, bid_size = msg.bids[0] if msg.bids else (0.0, 0.0)
        ask, ask_size = msg.asks[0] if msg.asks else (0.0, 0.0)
        check_bbo(bid, bid_size, ask, ask_size, ts, recv_ns)
        out.bbo.append(Bbo(
            exchange=EXCHANGE, symbol=self.symbols[native], native_symbol=native, ts=ts,
            recv_ts=recv_ns, update_id=msg.microtimestamp, bid_price=bid, bid_size=bid_size,
            ask_price=ask, ask_size=ask_size,
        ))  # fmt: skip
        return FrameStatus.PROCESSED

    # ------------------------------------------------------------------ REST
    def snapshot_url(self, native: str) -> str:
        return f"{self.rest_url}/api/v2/order_book/{native}"

    def due_requests(self, now_ns: int) -> list[RestRequest]:
        self._now_ns = max(self._now_ns, now_ns)
        requests = []
        interval = self.options.rest_min_interval_ns
        for native, book in self._books.items():
            if not book.needs_request or native in self._in_flight:
                continue
            if now_ns < self._not_before_ns.get(native, 0):
                continue
            if now_ns < book.request_from_ns(self.options.snapshot_ack_wait_ns):
                continue
            if now_ns < self._last_request_ns + interval:
                break
            self._last_request_ns = now_ns
            book.wants_snapshot = False
            request = RestRequest(
                key=native, url=self.snapshot_url(native), purpose=RestPurpose.BOOK_SNAPSHOT
            )
            self._in_flight[native] = (request, book.acked, now_ns)
            requests.append(request)
        requests.extend(self._backfill_requests(now_ns, finishing=False))
        if self._pairs_wanted and now_ns >= self._pairs_not_before_ns:
            self._pairs_wanted = False
            requests.append(RestRequest(
                key=PAIRS_KEY, url=f"{self.rest_url}/api/v2/trading-pairs-info/",
                purpose=RestPurpose.SYMBOL_LISTING,
            ))  # fmt: skip
        return requests

    def next_wakeup_ns(self) -> int | None:
        times = []
        interval = self.options.rest_min_interval_ns
        for native, book in self._books.items():
            if book.needs_request and native not in self._in_flight:
                times.append(
                    max(
                        self._last_request_ns + interval,
                        self._not_before_ns.get(native, 0),
                        book.request_from_ns(self.options.snapshot_ack_wait_ns),
                    )
                )
        backfill = self._backfill.next_ns()
        if backfill is not None:
            times.append(max(backfill, self._last_request_ns + interval))
        if self._pairs_wanted:
            times.append(self._pairs_not_before_ns)
        return max(min(times), self._now_ns) if times else None

    def receive_response(
        self, request: RestRequest, response: RestResponse, recv_ns: int, out: RecordSink
    ) -> None:
        self._now_ns = max(self._now_ns, recv_ns)
        if request.purpose is RestPurpose.BOOK_SNAPSHOT:
            self._snapshot(request, response, recv_ns, out)
        elif request.purpose is RestPurpose.SYMBOL_LISTING:
            self._listing(response, recv_ns, out)
        elif request.purpose is RestPurpose.TRADE_BACKFILL:
            self._backfill.answered(request, response, recv_ns, out)

    def _backfill_requests(self, now_ns: int, *, finishing: bool) -> list[RestRequest]:
        """Fetches of owed trades due now, spaced like the snapshots (which go first)."""
        requests = []
        interval = self.options.rest_min_interval_ns
        for native in self._backfill.due(now_ns, finishing=finishing):
            if now_ns < self._last_request_ns + interval:
                break
            self._last_request_ns = now_ns
            requests.append(self._backfill.request(native, now_ns))
        return requests

    def finishing_requests(self, now_ns: int) -> list[RestRequest] | None:
        """At a clean stop: fetch the owed trades now, without waiting out the delay."""
        if not self._backfill.owed:
            return None
        return self._backfill_requests(now_ns, finishing=True)

    def owed_ids(self) -> int:
        """Pairs whose outage trades are still to fetch (their ids are not known ahead)."""
        return len(self._backfill.owed)

    def abandon(self, now_ns: int, out: RecordSink) -> None:
        self._backfill.abandon(now_ns, out)

    @property
    def trades_backfilled(self) -> int:
        return self._backfill.recovered

    def _backoff_ns(self, failures: int) -> int:
        return int(min(self.options.backoff_cap_s, 0.5 * 2 ** min(failures - 1, 16)) * NS)

    def _snapshot(
        self, request: RestRequest, response: RestResponse, recv_ns: int, out: RecordSink
    ) -> None:
        """A snapshot is judged by its microtimestamp against the diffs buffered now, whichever
        request fetched it: an answer to a request of a connection closed since is as good
        (live, and in replays, which hand captured answers to the oldest request waiting).
        Only the current request vouches for having been asked after the subscription ack."""
        native = request.key
        book = self._books.get(native)
        asked = self._in_flight.get(native)
        current = asked is not None and asked[0] is request
        if current:
            del self._in_flight[native]
        if book is None or not book.connected or (book.synced and not current):
            return
        after_ack = current and asked is not None and asked[1]
        asked_ns = asked[2] if current and asked is not None else None
        snapshot: BookMsg | None = None
        if 200 <= response.status < 300:
            try:
                snapshot = BOOK_DECODER.decode(response.body)
                check_levels("bid", snapshot.bids)
                check_levels("ask", snapshot.asks)
                # the time of the book's last change: a quiet pair's may be days old, so only
                # a time in the future (or none at all) is implausible
                if snapshot.microtimestamp <= 0:
                    raise RejectedFrame("invalid_value", "snapshot microtimestamp missing")
                check_time(
                    "snapshot microtimestamp",
                    max(snapshot.microtimestamp * US, recv_ns),
                    recv_ns,
                )
            except DECODE_ERRORS as e:
                log.warning("%s order_book snapshot unreadable (%s); refetching", native, e)
                snapshot = None
            except RejectedFrame as e:
                log.warning("%s order_book snapshot refused (%s); refetching", native, e)
                snapshot = None
        if snapshot is None:
            if not current:
                return  # the current request is still in flight
            failures = self._failures.get(native, 0) + 1
            self._failures[native] = failures
            self._not_before_ns[native] = recv_ns + self._backoff_ns(failures)
            book.snapshot_failed()
            return
        self._failures.pop(native, None)
        book.on_snapshot(snapshot, recv_ns, asked_ns, after_ack, out)

    def _listing(self, response: RestResponse, recv_ns: int, out: RecordSink) -> None:
        """Check every configured pair against ``trading-pairs-info``; retry unusable answers."""
        pairs: list[PairInfo] | None = None
        if 200 <= response.status < 300:
            try:
                pairs = PAIRS_DECODER.decode(response.body)
            except DECODE_ERRORS as e:
                log.warning("trading-pairs-info unreadable (%s); refetching", e)
        if pairs is None:
            self._pairs_failures += 1
            self._pairs_wanted = True
            self._pairs_not_before_ns = recv_ns + self._backoff_ns(self._pairs_failures)
            return
        listed = {p.url_symbol: p for p in pairs}
        for native, symbol in self.symbols.items():
            problem = _listing_problem(native, listed.get(native))
            if problem is None:
                continue
            self.invalid_symbols.append(native)
            pair = listed.get(native)
            if pair is not None and pair.name != listed_name(native):
                self._drop_pair(native)
                problem += "; not collected (unsubscribed)"
            out.events.append(Event(
                exchange=EXCHANGE, symbol=symbol, native_symbol=native, ts=recv_ns,
                recv_ts=recv_ns, kind=EventKind.INVALID_SYMBOL.value, channel="", expected=-1,
                received=-1, detail=problem,
            ))  # fmt: skip

    # ------------------------------------------------------------------ status
    def books(self) -> list[BookStatus]:
        return [book.state() for book in self._books.values()]

    def book(self, native: str) -> OrderBook:
        """The live book state machine of one pair (tests, status screens)."""
        return self._books[native]


def _listing_problem(native: str, pair: PairInfo | None) -> str | None:
    """Why ``native`` cannot be collected as configured, or None if it can."""
    if pair is None:
        return f"BITSTAMP does not list {native} (trading-pairs-info)"
    expected = listed_name(native)
    if pair.name != expected:
        return (
            f"BITSTAMP lists {native} as {pair.name}, not {expected}: its normalized symbol "
            "would be wrong (trading-pairs-info)"
        )
    if pair.trading != "Enabled":
        return (
            f"BITSTAMP lists {native} ({pair.name}) with trading {pair.trading} "
            "(trading-pairs-info)"
        )
    return None
