"""Typed shapes of Binance user-data (account) events and WebSocket-API replies.

Spot events arrive on the WebSocket API wrapped as ``{"subscriptionId": n, "event": {...}}``;
USD-M events arrive bare on the listen-key stream. Field names are Binance's letters; decoders
are lax (``strict=False``) so quoted decimals become floats. Conditional fields (present only for
some order kinds: trailing stops, strategies, self-trade prevention, SOR...) default to their
"absent" value, so every documented field decodes and none is required that Binance may omit.
"""

from __future__ import annotations

from typing import Final

import msgspec
from msgspec import Raw, Struct, field

from hundi.exchanges.binance.messages import EMPTY, Id, Millis, Num, Signed


class ApiReply(Struct, gc=False):
    """Anything on a spot WebSocket-API connection: a reply (``id``/``status``) or an event."""

    id: int | str | None = None
    status: int | None = None
    result: Raw = EMPTY
    error: Raw = EMPTY
    subscription_id: int | None = field(name="subscriptionId", default=None)
    event: Raw = EMPTY


class SentRequest(Struct, gc=False):
    """A WebSocket-API request as the collector sent it (a capture's ``sent`` event): its id
    and method are what a replay needs to read the reply."""

    id: int | str | None = None
    method: str = ""


class ApiError(Struct, gc=False):
    code: int = 0
    msg: str = ""


class AccountEventType(Struct, gc=False):
    """Just the type (``e``) of an account event: it picks the handler that decodes the event
    strictly typed ("" when absent: an unknown event)."""

    e: str = ""


class ExecutionReport(Struct, gc=False):
    """Spot ``executionReport``: one order update (new, trade, cancel, reject, expiry...)."""

    event_time: Millis = field(name="E")
    symbol: str = field(name="s")
    client_order_id: str = field(name="c")
    side: str = field(name="S")
    order_type: str = field(name="o")
    time_in_force: str = field(name="f")
    quantity: Num = field(name="q")
    price: Num = field(name="p")
    stop_price: Num = field(name="P")
    execution: str = field(name="x")
    status: str = field(name="X")
    order_id: Id = field(name="i")
    last_quantity: Num = field(name="l")
    filled: Num = field(name="z")
    last_price: Num = field(name="L")
    transaction_time: Millis = field(name="T")
    iceberg_quantity: Num = field(name="F", default=0.0)
    order_list_id: Id = field(name="g", default=-1)
    original_client_order_id: str = field(name="C", default="")
    reject_reason: str = field(name="r", default="NONE")
    commission: Signed = field(name="n", default=0.0)
    commission_asset: str | None = field(name="N", default=None)
    trade_id: Id = field(name="t", default=-1)
    ignore_id: Id = field(name="I", default=-1)
    on_book: bool = field(name="w", default=False)
    maker: bool = field(name="m", default=False)
    ignore_flag: bool = field(name="M", default=False)
    created_time: Millis = field(name="O", default=0)
    filled_quote: Num = field(name="Z", default=0.0)
    last_quote: Num = field(name="Y", default=0.0)
    quote_quantity: Num = field(name="Q", default=0.0)
    working_time: Id = field(name="W", default=-1)
    self_trade_prevention: str = field(name="V", default="NONE")
    # conditional fields
    trailing_delta: Id = field(name="d", default=-1)
    trailing_time: Id = field(name="D", default=-1)
    strategy_id: Id = field(name="j", default=-1)
    strategy_type: Id = field(name="J", default=-1)
    prevented_match_id: Id = field(name="v", default=-1)
    prevented_quantity: Num = field(name="A", default=0.0)
    last_prevented_quantity: Num = field(name="B", default=0.0)
    trade_group_id: Id = field(name="u", default=-1)
    counter_order_id: Id = field(name="U", default=-1)
    counter_symbol: str = field(name="Cs", default="")
    prevented_execution_quantity: Num = field(name="pl", default=0.0)
    prevented_execution_price: Num = field(name="pL", default=0.0)
    prevented_execution_quote: Num = field(name="pY", default=0.0)
    match_type: str = field(name="b", default="")
    allocation_id: Id = field(name="a", default=-1)
    working_floor: str = field(name="k", default="")
    used_sor: bool = field(name="uS", default=False)


class Balance(Struct, gc=False):
    asset: str = field(name="a")
    free: Signed = field(name="f")
    locked: Signed = field(name="l")


class AccountPosition(Struct, gc=False):
    """Spot ``outboundAccountPosition``: balances that changed."""

    event_time: Millis = field(name="E")
    last_update: Millis = field(name="u")
    balances: list[Balance] = field(name="B")


class BalanceUpdate(Struct, gc=False):
    """Spot ``balanceUpdate``: a deposit, withdrawal or transfer."""

    event_time: Millis = field(name="E")
    asset: str = field(name="a")
    delta: Signed = field(name="d")
    clear_time: Millis = field(name="T")


class EventTime(Struct, gc=False):
    """An event of which only its time is used: spot ``eventStreamTerminated`` (the subscription
    ended: session logged out...) and USD-M ``listenKeyExpired`` (whose ``E`` is sometimes sent
    quoted: lax decoding takes both)."""

    event_time: Millis = field(name="E", default=0)


class FuturesOrder(Struct, gc=False):
    """The ``o`` object of USD-M ``ORDER_TRADE_UPDATE``."""

    symbol: str = field(name="s")
    client_order_id: str = field(name="c")
    side: str = field(name="S")
    order_type: str = field(name="o")
    time_in_force: str = field(name="f")
    quantity: Num = field(name="q")
    price: Num = field(name="p")
    average_price: Num = field(name="ap")
    stop_price: Num = field(name="sp")
    execution: str = field(name="x")
    status: str = field(name="X")
    order_id: Id = field(name="i")
    last_quantity: Num = field(name="l")
    filled: Num = field(name="z")
    last_price: Num = field(name="L")
    trade_time: Millis = field(name="T")
    trade_id: Id = field(name="t", default=0)
    commission_asset: str | None = field(name="N", default=None)
    commission: Signed = field(name="n", default=0.0)
    bids_notional: Signed = field(name="b", default=0.0)
    asks_notional: Signed = field(name="a", default=0.0)
    maker: bool = field(name="m", default=False)
    reduce_only: bool = field(name="R", default=False)
    working_type: str = field(name="wt", default="")
    original_type: str = field(name="ot", default="")
    position_side: str = field(name="ps", default="")
    close_all: bool = field(name="cp", default=False)
    activation_price: Num = field(name="AP", default=0.0)
    callback_rate: Num = field(name="cr", default=0.0)
    price_protect: bool = field(name="pP", default=False)
    realized_profit: Signed = field(name="rp", default=0.0)
    self_trade_prevention: str = field(name="V", default="")
    price_match: str = field(name="pm", default="")
    good_till: Id = field(name="gtd", default=0)
    expiry_reason: str = field(name="er", default="")


class OrderTradeUpdate(Struct, gc=False):
    event_time: Millis = field(name="E")
    transaction_time: Millis = field(name="T")
    order: FuturesOrder = field(name="o")


class TradeLite(Struct, gc=False):
    """USD-M ``TRADE_LITE``: a fast, reduced fill notice (the full one is ORDER_TRADE_UPDATE)."""

    event_time: Millis = field(name="E")
    transaction_time: Millis = field(name="T")
    symbol: str = field(name="s")
    quantity: Num = field(name="q")
    price: Num = field(name="p")
    maker: bool = field(name="m")
    client_order_id: str = field(name="c")
    side: str = field(name="S")
    last_price: Num = field(name="L")
    last_quantity: Num = field(name="l")
    trade_id: Id = field(name="t")
    order_id: Id = field(name="i")


class FuturesBalance(Struct, gc=False):
    asset: str = field(name="a")
    wallet: Signed = field(name="wb")
    cross_wallet: Signed = field(name="cw")
    change: Signed = field(name="bc", default=0.0)


class FuturesPosition(Struct, gc=False):
    symbol: str = field(name="s")
    amount: Signed = field(name="pa")
    entry_price: Signed = field(name="ep")
    breakeven_price: Signed = field(name="bep", default=0.0)
    accumulated_realized: Signed = field(name="cr", default=0.0)
    unrealized: Signed = field(name="up", default=0.0)
    margin_type: str = field(name="mt", default="")
    isolated_wallet: Signed = field(name="iw", default=0.0)
    position_side: str = field(name="ps", default="")


class AccountData(Struct, gc=False):
    reason: str = field(name="m")
    balances: list[FuturesBalance] = field(name="B", default_factory=list)
    positions: list[FuturesPosition] = field(name="P", default_factory=list)


class AccountUpdate(Struct, gc=False):
    """USD-M ``ACCOUNT_UPDATE``: balances and positions after a change."""

    event_time: Millis = field(name="E")
    transaction_time: Millis = field(name="T")
    account: AccountData = field(name="a")


class ListenKeyReply(Struct, gc=False):
    listen_key: str = field(name="listenKey")


API_REPLY_DECODER: Final = msgspec.json.Decoder(ApiReply)
SENT_REQUEST_DECODER: Final = msgspec.json.Decoder(SentRequest)
API_ERROR_DECODER: Final = msgspec.json.Decoder(ApiError, strict=False)
ACCOUNT_EVENT_TYPE_DECODER: Final = msgspec.json.Decoder(AccountEventType)
EXECUTION_REPORT_DECODER: Final = msgspec.json.Decoder(ExecutionReport, strict=False)
ACCOUNT_POSITION_DECODER: Final = msgspec.json.Decoder(AccountPosition, strict=False)
BALANCE_UPDATE_DECODER: Final = msgspec.json.Decoder(BalanceUpdate, strict=False)
EVENT_TIME_DECODER: Final = msgspec.json.Decoder(EventTime, strict=False)
ORDER_TRADE_UPDATE_DECODER: Final = msgspec.json.Decoder(OrderTradeUpdate, strict=False)
TRADE_LITE_DECODER: Final = msgspec.json.Decoder(TradeLite, strict=False)
ACCOUNT_UPDATE_DECODER: Final = msgspec.json.Decoder(AccountUpdate, strict=False)
LISTEN_KEY_DECODER: Final = msgspec.json.Decoder(ListenKeyReply)
