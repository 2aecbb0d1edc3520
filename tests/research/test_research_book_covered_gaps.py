"""``book_at``'s check whether another collector covers a book gap reads the rows around the
gap, not every row since the book's snapshot (an A/B pair's unbroken chain may have started
weeks before): a stub store records what is read."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

import pandas as pd
import pyarrow as pa

from hundi.records import BookChange, Channel, to_arrow
from hundi.research.book import book_gaps

S = 1_000_000_000
T0 = 1_714_608_000 * S  # 2024-05-02
DAY = 86_400 * S
GAP_AT = T0 + 10 * DAY + 50 * S


def change(u: int) -> BookChange:
    ts = T0 + 10 * DAY + u * S
    return BookChange(
        exchange="binance", symbol="BTC-USDT", native_symbol="BTCUSDT", ts=ts, recv_ts=ts + 1,
        side=1, price=100.0 + u % 5, size=1.0, snapshot=False, first_update_id=u, update_id=u,
        prev_update_id=-1,
    )  # fmt: skip


class StubStore:
    """A book chain 1..100 (one message a second, day 10) and one gap event of collector A
    at message 50: the merged chain (B's) runs on across it."""

    def __init__(self) -> None:
        self.book = to_arrow(Channel.BOOK, [change(u) for u in range(1, 101)])
        self.book_reads: list[tuple[int, int]] = []

    def read(self, **kwargs: Any) -> pd.DataFrame:
        assert kwargs["channel"] is Channel.EVENTS
        index = pd.DatetimeIndex([pd.Timestamp(GAP_AT, unit="ns", tz="UTC")], name="ts")
        return pd.DataFrame(
            {
                "kind": ["gap"], "channel": ["book"], "expected": [50], "received": [51],
                "detail": ["sequence break: expected 50, got 51"],
            },
            index=index,
        )  # fmt: skip

    def read_days(
        self, *, start_ns: int, end_ns: int, columns: list[str], **_: Any
    ) -> Iterator[tuple[date, pa.Table]]:
        self.book_reads.append((start_ns, end_ns))
        ts = self.book.column("ts").cast(pa.int64())
        inside = pa.compute.and_(
            pa.compute.greater_equal(ts, start_ns), pa.compute.less(ts, end_ns)
        )
        table = self.book.filter(inside).select(columns)
        if table.num_rows:
            yield date(2024, 5, 12), table


def test_a_covered_gap_is_judged_on_the_rows_around_it_not_since_the_snapshot() -> None:
    store = StubStore()
    since = T0  # the book's snapshot: ten days before the gap
    gaps = book_gaps(store, "binance", "BTC-USDT", since, GAP_AT + 5 * S)  # type: ignore[arg-type]
    assert len(gaps) == 0  # covered: B's chain holds 49 and 51 in one unbroken stretch
    assert store.book_reads and all(
        start >= GAP_AT - 2 * 3_600 * S for start, _ in store.book_reads
    )
