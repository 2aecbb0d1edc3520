"""Bitfinex v2 public channels on the shared synthetic market: trades, books, ticker, candles.

Served on the simulator's ``/ws/2`` next to the authenticated channel 0. A connection sends
``{"event":"conf","flags":F}`` (65536: a sequence number ends every frame, 131072: a ``cs``
checksum frame after every book change) and ``subscribe`` requests, answered ``subscribed``
with a ``chanId`` and a snapshot: the whole book as ``[PRICE, COUNT, AMOUNT]`` levels (every
level, whatever ``len`` asked: the checksum covers the top 25 either way), the last 30 trades,
the current candle. Then per market action: one ``[CHAN_ID,[PRICE,COUNT,AMOUNT],SEQ]`` per
changed level (count 0 deletes), ``te`` then ``tu`` per trade, candle updates; tickers every
second, heartbeats per channel. Unknown symbols are refused with error 10300.

``unsubscribe`` (``{"event":"unsubscribe","chanId":N}``) is answered ``unsubscribed`` (error
10400 for a chanId the socket does not have), so a client can resync one book in place.

Faults (each every N seconds, on every connection): ``checksum`` sends a wrong ``cs`` for one
book, ``seq`` skips a sequence number, ``reconnect`` sends info 20051, ``drop`` aborts sockets
and ``drop_trades`` aborts them and, for each symbol whose trades were subscribed, withholds
from the WebSocket the trades published until its trades are subscribed again: they are in no
snapshot (as if more trades had happened than a snapshot holds), only REST has them (both the
server's own). REST ``/v2/conf/pub:list:pair:exchange`` (and
``pair:future``, ``currency``) list the simulated symbols; ``/v2/trades/{symbol}/hist``
(``start``/``end`` ms inclusive, ``limit`` default 125 max 10000, ``sort`` 1 oldest first or
-1 newest first, the default) serves every trade published. The ground truth
(``GET /sim/public``) lists every trade published (and how many were withheld) and each book as
it now stands; ``POST /sim/public/pause`` freezes the market
(heartbeats and tickers go on) so a test can compare final books.
"""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from hundi.exchanges.bitfinex.checksum import book_checksum
from hundi.exchanges.bitfinex.symbols import split
from hundi.simulator.market import SymbolMarket, SyntheticMarket

SEQ_FLAG = 65536
CHECKSUM_FLAG = 131072
TRADES_IN_SNAPSHOT = 30
HIST_DEFAULT_LIMIT = 125
HIST_MAX_LIMIT = 10_000
PUBLIC_FAULTS = ("checksum", "seq", "reconnect")
Send = Callable[[Any], Awaitable[bool]]


@dataclass(slots=True)
class PublicConn:
    """One socket's public state: its flags, sequence counter and subscriptions."""

    send: Send
    flags: int = 0
    seq: int = 0
    subs: dict[int, tuple[str, str]] = field(default_factory=dict)  # chanId → (channel, sym)

    def stamp(self, frame: list[Any]) -> list[Any]:
        if self.flags & SEQ_FLAG:
            self.seq += 1
            frame.append(self.seq)
        return frame


@dataclass(slots=True)
class SymbolState:
    """What the feed published for one symbol (snapshots and ground truth come from it)."""

    market: SymbolMarket
    scale_price: int  # ticks per unit: prices are ticks / scale
    scale_qty: int
    recent: deque[list[Any]] = field(default_factory=lambda: deque(maxlen=TRADES_IN_SNAPSHOT))
    candle: list[Any] | None = None  # [MTS, OPEN, CLOSE, HIGH, LOW, VOLUME] of this minute


class PublicFeed:
    """See the module docstring; the server hands it ``conf``/``subscribe`` requests."""

    def __init__(self, symbols: tuple[str, ...], seed: int, rate: float) -> None:
        now_ms = time.time_ns() // 1_000_000
        self.market = SyntheticMarket(symbols, seed, now_ms, trade_history=TRADES_IN_SNAPSHOT)
        self.market.add_depth_speed(1)
        self.rate = rate
        self.rng = random.Random(seed)
        self.symbols: dict[str, SymbolState] = {
            s: SymbolState(m, 10**m.spec.price_decimals, 10**m.spec.qty_decimals)
            for s, m in self.market.symbols.items()
        }
        self.conns: dict[int, PublicConn] = {}
        self.next_chan = 1000
        self.trades: list[dict[str, Any]] = []  # every trade published (ground truth)
        self.actions = 0
        self.paused = False  # tests freeze the market to compare final books
        self.fault_counts: dict[str, int] = {}
        self.withholding: set[str] = set()  # ``drop_trades``: symbols whose trades skip the WS
        self.withheld = 0  # trades kept off the WebSocket by ``drop_trades``

    # -- requests -----------------------------------------------------------------------------
    def attach(self, conn_id: int, send: Send) -> None:
        self.conns[conn_id] = PublicConn(send)

    def detach(self, conn_id: int) -> None:
        self.conns.pop(conn_id, None)

    async def request(self, conn_id: int, req: dict[str, Any]) -> None:
        conn = self.conns[conn_id]
        event = req.get("event")
        if event == "conf":
            flags = req.get("flags")
            conn.flags = flags if isinstance(flags, int) else 0
            await conn.send({"event": "conf", "status": "OK", "flags": conn.flags})
        elif event == "subscribe":
            await self._subscribe(conn, req)
        elif event == "unsubscribe":
            chan_id = req.get("chanId")
            if isinstance(chan_id, int) and conn.subs.pop(chan_id, None) is not None:
                await conn.send({"event": "unsubscribed", "status": "OK", "chanId": chan_id})
            else:
                await conn.send({"event": "error", "code": 10400, "chanId": chan_id,
                                 "msg": "unsubscribe: invalid"})  # fmt: skip
        elif event == "ping":
            await conn.send({"event": "pong", "ts": time.time_ns() // 1_000_000,
                             "cid": req.get("cid")})  # fmt: skip
        else:
            await conn.send({"event": "error", "code": 10000, "msg": "Unknown event"})

    async def _subscribe(self, conn: PublicConn, req: dict[str, Any]) -> None:
        channel = str(req.get("channel", ""))
        symbol = str(req.get("symbol", ""))
        key = str(req.get("key", ""))
        if channel == "candles":
            symbol = key.split(":", 2)[-1]
        state = self.symbols.get(symbol)
        if channel not in ("book", "trades", "ticker", "candles") or state is None:
            await conn.send({"event": "error", "msg": "symbol: invalid", "code": 10300,
                             "channel": channel, "symbol": symbol})  # fmt: skip
            return
        chan_id, self.next_chan = self.next_chan, self.next_chan + 1
        ack: dict[str, Any] = {"event": "subscribed", "channel": channel, "chanId": chan_id}
        ack |= {"key": key} if channel == "candles" else {"symbol": symbol, "pair": symbol[1:]}
        if channel == "book":
            ack |= {k: req[k] for k in ("prec", "freq", "len") if k in req}
        await conn.send(ack)
        if channel == "trades":
            self.withholding.discard(symbol)  # a client is back: what follows is live
        conn.subs[chan_id] = (channel, symbol)
        await conn.send(conn.stamp([chan_id, self._snapshot(channel, state)]))

    def _snapshot(self, channel: str, state: SymbolState) -> list[Any]:
        if channel == "book":
            bids, asks = self._book(state)
            return [[p, 1, a] for p, a in sorted(bids.items(), reverse=True)] + [
                [p, 1, -a] for p, a in sorted(asks.items())
            ]
        if channel == "trades":
            return list(reversed(state.recent))
        if channel == "candles":
            return [list(state.candle)] if state.candle else []
        return self._ticker(state)

    def _book(self, state: SymbolState) -> tuple[dict[float, float], dict[float, float]]:
        m, sp, sq = state.market, state.scale_price, state.scale_qty
        return (
            {p / sp: q / sq for p, q in m.bids.items()},
            {p / sp: q / sq for p, q in m.asks.items()},
        )

    def _ticker(self, state: SymbolState) -> list[Any]:
        m, sp, sq = state.market, state.scale_price, state.scale_qty
        s = m.stats
        last = s.last / sp
        change = last - s.open / sp
        return [m.best_bid / sp, m.bids[m.best_bid] / sq, m.best_ask / sp,
                m.asks[m.best_ask] / sq, change, change / (s.open / sp) if s.open else 0.0,
                last, s.volume / sq, max(s.high, s.last) / sp, min(s.low, s.last) / sp]  # fmt: skip

    # -- the market ---------------------------------------------------------------------------
    async def tick(self, elapsed_s: float) -> None:
        """Run the market actions due in ``elapsed_s`` and publish them to every subscriber."""
        if self.paused:
            return
        due = max(1, round(self.rate * elapsed_s))
        frames: dict[tuple[str, str], list[list[Any]]] = {}
        now_ms = time.time_ns() // 1_000_000
        for _ in range(due):
            market = self.market.step()
            self.actions += 1
            symbol = market.spec.symbol
            state = self.symbols[symbol]
            for event in market.events:
                if event[0] == "A":
                    self._trades(state, event, now_ms, frames.setdefault((symbol, "trades"), []),
                                 frames.setdefault((symbol, "candles"), []))  # fmt: skip
            market.events.clear()
            for sym, diff in self.market.take_depth(1):
                s = self.symbols[sym]
                out = frames.setdefault((sym, "book"), [])
                for price, qty in diff[3].items():
                    out.append([price / s.scale_price, 1 if qty else 0,
                                qty / s.scale_qty if qty else 1])  # fmt: skip
                for price, qty in diff[4].items():
                    out.append([price / s.scale_price, 1 if qty else 0,
                                -qty / s.scale_qty if qty else -1])  # fmt: skip
        checksums = {sym: book_checksum(*self._book(s)) for sym, s in self.symbols.items()}
        for conn in list(self.conns.values()):
            for chan_id, (channel, symbol) in list(conn.subs.items()):
                payloads = frames.get((symbol, channel))
                if not payloads:
                    continue
                for payload in payloads:
                    if channel == "trades":
                        kind, trade = payload
                        message = [chan_id, kind, trade]
                    else:
                        message = [chan_id, payload]
                    if not await conn.send(conn.stamp(message)):
                        break
                if channel == "book" and conn.flags & CHECKSUM_FLAG:
                    await conn.send(conn.stamp([chan_id, "cs", checksums[symbol]]))

    def _trades(
        self,
        state: SymbolState,
        event: tuple[Any, ...],
        now_ms: int,
        trade_frames: list[list[Any]],
        candle_frames: list[list[Any]],
    ) -> None:
        _, _, price, _, _, _, buyer_is_maker, fills = event
        px = price / state.scale_price
        for trade_id, qty in fills:
            amount = qty / state.scale_qty * (-1 if buyer_is_maker else 1)
            trade = [trade_id, now_ms, amount, px]
            self.trades.append({"symbol": state.market.spec.symbol, "id": trade_id,
                                "mts": now_ms, "amount": amount, "price": px})  # fmt: skip
            if state.market.spec.symbol in self.withholding:
                self.withheld += 1  # only REST trades/hist has it
            else:
                state.recent.append(trade)
                trade_frames += [["te", trade], ["tu", trade]]
            minute = now_ms - now_ms % 60_000
            c = state.candle
            if c is None or c[0] != minute:
                state.candle = c = [minute, px, px, px, px, 0.0]
            c[2], c[3], c[4] = px, max(c[3], px), min(c[4], px)
            c[5] += abs(amount)
            candle_frames.append(list(c))

    async def tickers(self) -> None:
        for conn in list(self.conns.values()):
            for chan_id, (channel, symbol) in list(conn.subs.items()):
                if channel == "ticker":
                    await conn.send(conn.stamp([chan_id, self._ticker(self.symbols[symbol])]))

    async def heartbeats(self) -> None:
        for conn in list(self.conns.values()):
            for chan_id in list(conn.subs):
                await conn.send(conn.stamp([chan_id, "hb"]))

    # -- faults -------------------------------------------------------------------------------
    async def fault(self, kind: str) -> None:
        """One ``checksum``, ``seq`` or ``reconnect`` fault on every connection."""
        self.fault_counts[kind] = self.fault_counts.get(kind, 0) + 1
        for conn in list(self.conns.values()):
            if kind == "seq":
                conn.seq += 1  # the number the next frame would have carried is never sent
            elif kind == "reconnect":
                await conn.send({"event": "info", "code": 20051,
                                 "msg": "Stopping. Please try to reconnect"})  # fmt: skip
            elif kind == "checksum":
                books = [(c, s) for c, (ch, s) in conn.subs.items() if ch == "book"]
                if books and conn.flags & CHECKSUM_FLAG:
                    chan_id, symbol = self.rng.choice(books)
                    wrong = book_checksum(*self._book(self.symbols[symbol])) ^ 0x5A5A
                    await conn.send(conn.stamp([chan_id, "cs", wrong]))

    def withhold_trades(self) -> None:
        """``drop_trades`` (the sockets are being dropped): the trades of every subscribed
        symbol skip the WebSocket until its trades are subscribed again."""
        self.withholding = {
            symbol
            for conn in self.conns.values()
            for channel, symbol in conn.subs.values()
            if channel == "trades"
        }

    def hist(
        self, symbol: str, start: int | None, end: int | None, limit: int, sort: int
    ) -> list[list[Any]] | None:
        """REST ``/v2/trades/{symbol}/hist``: ``[ID, MTS, AMOUNT, PRICE]`` of published trades
        with ``start <= MTS <= end``; None for an unknown symbol."""
        if symbol not in self.symbols:
            return None
        found = [
            [t["id"], t["mts"], t["amount"], t["price"]]
            for t in self.trades
            if t["symbol"] == symbol
            and (start is None or t["mts"] >= start)
            and (end is None or t["mts"] <= end)
        ]
        found.sort(key=lambda t: (t[1], t[0]), reverse=sort != 1)
        return found[:limit]

    def listing(self, name: str) -> list[list[str]] | None:
        """REST ``/v2/conf/{name}`` for the simulated symbols; None for an unknown list."""
        pairs = [s[1:] for s in self.symbols]
        if name == "pub:list:pair:exchange":
            return [pairs]
        if name == "pub:list:pair:future":
            return [[]]
        if name == "pub:list:currency":
            codes = {c for s in self.symbols for c in split(s)}
            return [sorted(codes)]
        return None

    def ground_truth(self) -> dict[str, Any]:
        books = {}
        for symbol, state in self.symbols.items():
            bids, asks = self._book(state)
            books[symbol] = {"bids": sorted(bids.items(), reverse=True),
                             "asks": sorted(asks.items())}  # fmt: skip
        return {"trades": self.trades, "books": books, "actions": self.actions,
                "faults": dict(self.fault_counts), "withheld": self.withheld}  # fmt: skip
