"""Chunk encoding without a server: a live flush's small chunk is stored uncompressed (cheap to
read back), a large one compressed, both decode to the records written and both are the same
bytes when encoded again (a re-sent chunk replaces itself)."""

from __future__ import annotations

import pyarrow as pa
import pytest

from hundi.records import Channel, Record, Trade, to_arrow
from hundi.stores import base as base_module
from hundi.stores.cassandra.chunks import (
    SMALL_CHUNK_ROWS,
    Chunk,
    assemble,
    chunk_schema,
    encode_chunks,
    read_chunk,
)

T0 = 1_714_521_600_000_000_000  # 2024-05-01T00:00:00Z


def trades(count: int) -> list[Record]:
    return [
        Trade(
            exchange="x", symbol="BTC-USDT", native_symbol="BTCUSDT", ts=T0 + i * 1_000,
            recv_ts=T0 + i * 1_000 + 5, trade_id=i, price=100.0 + i % 13, size=0.5, side=1,
            first_trade_id=i, last_trade_id=i,
        )
        for i in range(count)
    ]  # fmt: skip


def ipc(table: pa.Table, codec: str | None) -> bytes:
    sink = pa.BufferOutputStream()
    options = pa.ipc.IpcWriteOptions(compression=codec, use_threads=False)
    with pa.ipc.new_stream(sink, table.schema, options=options) as writer:
        writer.write_table(table, max_chunksize=table.num_rows)
    return bytes(sink.getvalue().to_pybytes())


def decoded(chunk: Chunk) -> pa.Table:
    return read_chunk(Channel.TRADES, chunk.exchange, chunk.symbol, first_ts=chunk.first_ts,
                      chunk_id=chunk.chunk_id, records=chunk.records, data=chunk.data)  # fmt: skip


def test_a_small_chunk_is_stored_uncompressed_and_a_large_one_compressed() -> None:
    names = chunk_schema(Channel.TRADES).names
    for count, codec in ((20, None), (SMALL_CHUNK_ROWS - 1, None), (SMALL_CHUNK_ROWS, "zstd")):
        table = to_arrow(Channel.TRADES, trades(count))
        (chunk,) = encode_chunks(Channel.TRADES, table, codec="zstd")
        assert chunk.data == ipc(table.select(names), codec), count
        assert decoded(chunk).equals(table.select(names)), count
        (again,) = encode_chunks(Channel.TRADES, to_arrow(Channel.TRADES, trades(count)))
        assert again == chunk, count  # the same records: the same bytes, the same key


def test_a_large_write_split_by_chunk_rows_compresses_its_small_tail_only() -> None:
    table = to_arrow(Channel.TRADES, trades(210))
    chunks = list(encode_chunks(Channel.TRADES, table, codec="zstd", max_rows=100))
    assert [c.records for c in chunks] == [100, 100, 10]
    names = chunk_schema(Channel.TRADES).names
    assert chunks[0].data == ipc(table.slice(0, 100).select(names), "zstd")
    assert chunks[2].data == ipc(table.slice(200, 10).select(names), None)
    assert pa.concat_tables([decoded(c) for c in chunks]).equals(table.select(names))


def test_names_longer_than_one_string_array_holds_are_split_not_overflowed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A read's repeated exchange and symbol names: one small block referenced again per
    piece, so no string array's int32 offsets can overflow however many rows a read has (the
    block made small here)."""
    monkeypatch.setattr(base_module, "_CONSTANT_BLOCK_BYTES", 20)  # two "BTC-USDT" per block
    stored = [
        decoded(chunk)
        for chunk in encode_chunks(Channel.TRADES, to_arrow(Channel.TRADES, trades(5)))
    ]
    table = assemble(Channel.TRADES, "x", "BTC-USDT", stored)
    symbols = table.column("symbol")
    assert symbols.to_pylist() == ["BTC-USDT"] * 5
    assert [len(piece) for piece in symbols.chunks] == [2, 2, 1]
    table.validate(full=True)


def test_a_flush_of_several_streams_and_hours_is_one_chunk_each_keeping_arrival_order() -> None:
    """Two exchanges, two symbols, an hour boundary, interleaved: one chunk per stream-hour,
    each holding its rows in arrival order, and together every row once."""
    hour = 3_600_000_000_000
    records = [
        Trade(
            exchange=("x", "y")[i % 2], symbol=("BTC-USDT", "ETH-USDT")[i // 2 % 2],
            native_symbol="N", ts=T0 + hour - 50 + i * 7 * (-1 if i % 5 == 0 else 1),
            recv_ts=T0 + hour + i, trade_id=i, price=100.0 + i, size=0.5, side=1,
            first_trade_id=i, last_trade_id=i,
        )
        for i in range(40)
    ]  # fmt: skip
    chunks = list(encode_chunks(Channel.TRADES, to_arrow(Channel.TRADES, records)))
    seen = []
    for chunk in chunks:
        ids = decoded(chunk).column("trade_id").to_pylist()
        key = (chunk.exchange, chunk.symbol, chunk.first_ts // hour)
        expected = [r.trade_id for r in records if (r.exchange, r.symbol, r.ts // hour) == key]
        assert ids == expected  # arrival order within the stream-hour
        seen += ids
    assert sorted(seen) == list(range(40))
    hours = {(r.exchange, r.symbol, r.ts // hour) for r in records}
    assert len(chunks) == len(hours) == 8
