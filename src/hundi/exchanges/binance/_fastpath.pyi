from hundi.exchanges.base import FrameStatus, RecordSink
from hundi.exchanges.binance.routes import Route

def configure(
    agg_trade_route: type,
    book_ticker_route: type,
    trade: type,
    bbo: type,
    buy: int,
    sell: int,
    processed: FrameStatus,
    max_value: float,
    max_clock_skew_ns: int,
    /,
) -> None: ...
def receive(
    data: bytes, recv_ns: int, routes: dict[str, Route], sink: RecordSink, /
) -> FrameStatus | None: ...
