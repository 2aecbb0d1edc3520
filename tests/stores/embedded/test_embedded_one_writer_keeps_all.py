"""One collector's rows are never merged with each other (hundi.stores.merge, ``SOURCE``).

Real Coinbase level2 (``../shared/recordings``) sets and deletes one price level within one
exchange timestamp, and its rows carry no sequence id: their merge key repeats inside one
collector's stream. The store must return every one of them (the book ends as the exchange
left it), and two collectors' copies of the same stream must still become one.
"""

from __future__ import annotations

from pathlib import Path

import msgspec
import pyarrow as pa
import pyarrow.compute as pc

from hundi.accounting import Accounting
from hundi.capture.infer import infer_config
from hundi.capture.reader import read_capture
from hundi.capture.replay import Batch, replay_events
from hundi.exchanges import exchanges
from hundi.records import BookChange, Channel, to_arrow
from hundi.stores.embedded import EmbeddedStore


def coinbase_book(recordings_dir: Path) -> list[BookChange]:
    files = sorted(recordings_dir.glob("COINBASE.*"))
    config = infer_config(files, "coinbase", None)
    config.authenticate = False
    protocol = exchanges()["coinbase"].venue(config)
    batches: list[Batch] = []
    replay_events(read_capture(files), protocol, batches.append, Accounting())
    return [r for b in batches for r in b.get(Channel.BOOK, []) if isinstance(r, BookChange)]


def final_levels(table: pa.Table) -> dict[tuple[str, int, float], float]:
    """Each level's last size in stored (ts, recv_ts) order; a snapshot row sets it too."""
    levels: dict[tuple[str, int, float], float] = {}
    rows = table.select(["symbol", "side", "price", "size"]).to_pydict()
    for key in zip(rows["symbol"], rows["side"], rows["price"], rows["size"], strict=True):
        levels[key[:3]] = key[3]
    return {k: v for k, v in levels.items() if v > 0}


def write(root: Path, records: list[BookChange], shift_ns: int) -> None:
    """One collector run: the same exchange records, received ``shift_ns`` later."""
    store = EmbeddedStore(str(root), fsync=False)
    store.write(
        {Channel.BOOK: [msgspec.structs.replace(r, recv_ts=r.recv_ts + shift_ns) for r in records]}
    )
    store.flush()
    store.close()


def sorted_by_time(table: pa.Table) -> pa.Table:
    return table.take(pc.sort_indices(table, [("ts", "ascending"), ("recv_ts", "ascending")]))


def test_one_collectors_rows_that_share_a_key_all_read_back(
    recordings_dir: Path, tmp_path: Path
) -> None:
    records = coinbase_book(recordings_dir)
    written = sorted_by_time(to_arrow(Channel.BOOK, records))
    keys = written.group_by(["symbol", "ts", "side", "price", "snapshot"]).aggregate([])
    assert keys.num_rows < written.num_rows, "the recording no longer repeats a key"
    write(tmp_path, records, 0)
    store = EmbeddedStore(str(tmp_path), read_only=True)
    symbols = store.symbols("coinbase", Channel.BOOK)
    read = pa.concat_tables(
        [
            table
            for s in symbols
            for _, table in store.read_days(
                exchange="coinbase", symbol=s, channel=Channel.BOOK, ordered=True
            )
        ]
    )
    assert read.num_rows == written.num_rows
    assert final_levels(read) == final_levels(written)
    frames = [store.read(exchange="coinbase", symbol=s, channel=Channel.BOOK) for s in symbols]
    assert sum(len(f) for f in frames) == written.num_rows
    for symbol in symbols:
        for day, table in store.read_days(exchange="coinbase", symbol=symbol, channel=Channel.BOOK):
            whole = store.read_day("coinbase", Channel.BOOK, symbol, day)
            assert whole.table.num_rows == table.num_rows


def test_two_collectors_of_it_still_read_back_once(recordings_dir: Path, tmp_path: Path) -> None:
    records = coinbase_book(recordings_dir)
    written = sorted_by_time(to_arrow(Channel.BOOK, records))
    write(tmp_path, records, 5_000)  # collector A
    write(tmp_path, records, 3_000)  # collector B, first to receive every record
    store = EmbeddedStore(str(tmp_path), read_only=True)
    total = 0
    for symbol in store.symbols("coinbase", Channel.BOOK):
        for _, table in store.read_days(
            exchange="coinbase", symbol=symbol, channel=Channel.BOOK, ordered=True
        ):
            total += table.num_rows
            shift = pc.subtract(table.column("recv_ts").cast(pa.int64()), 0)
            mine = written.filter(pc.equal(written.column("symbol"), symbol))
            expected = pc.add(mine.column("recv_ts").cast(pa.int64()), 3_000)
            assert sorted(shift.to_pylist()) == sorted(expected.to_pylist())
    assert total == written.num_rows
