"""``hundi ls``: what a real embedded store holds, counted from its Parquet footers, checked
against what reading the rows (``hundi.read``) and ``hundi.coverage`` say."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import hundi
from hundi.listing import ls
from hundi.records import Channel, Event, Record, Trade
from hundi.stores.embedded import EmbeddedStore
from hundi.stores.embedded.layout import list_parts, part_name, split_live

HUNDI = Path(sys.executable).with_name("hundi")
DAY = 86_400 * 1_000_000_000
MS = 1_000_000
MAY_1 = int(datetime(2024, 5, 1, tzinfo=UTC).timestamp()) * 1_000_000_000


def trade(ts: int, trade_id: int, symbol: str = "BTC-USDT") -> Trade:
    return Trade(
        exchange="binance", symbol=symbol, native_symbol=symbol.replace("-", ""), ts=ts,
        recv_ts=ts + MS, trade_id=trade_id, price=100.0, size=1.0, side=1,
        first_trade_id=trade_id, last_trade_id=trade_id,
    )  # fmt: skip


def gap(ts: int, channel: str, expected: int, received: int, symbol: str = "BTC-USDT") -> Event:
    return Event(
        exchange="binance", symbol=symbol, native_symbol=symbol.replace("-", ""), ts=ts,
        recv_ts=ts, kind="gap", channel=channel, expected=expected, received=received,
        detail=f"ids {expected}..{received - 1} lost",
    )  # fmt: skip


def write(root: Path, *batches: dict[Channel, Sequence[Record]]) -> None:
    """Each batch one flush: one part file per partition per batch."""
    store = EmbeddedStore(str(root), fsync=False)
    for batch in batches:
        store.write(batch)
        store.flush()
    store.close()


def sample_store(root: Path) -> None:
    """BTC trades on May 1, 2 and 4 (May 3 missing), in several flushes, one gap in them;
    ETH trades on May 2; an exchange-wide reconnect event."""
    btc = [trade(MAY_1 + day * DAY + i * MS, day * 100 + i) for day in (0, 1, 3) for i in range(50)]
    eth = [trade(MAY_1 + DAY + 7 * MS + i * MS, i, "ETH-USDT") for i in range(20)]
    reconnect = Event(
        exchange="binance", symbol="", native_symbol="", ts=MAY_1 + 5 * MS, recv_ts=MAY_1 + 5 * MS,
        kind="reconnect", channel="", expected=-1, received=-1, detail="ws 1",
    )  # fmt: skip
    # ids 1000-1019 are really missing (a gap whose ids are stored counts as covered)
    lost = gap(btc[120].ts, "trades", 1000, 1020)
    write(
        root,
        {Channel.TRADES: btc[:30], Channel.EVENTS: [reconnect]},
        {Channel.TRADES: btc[30:90] + eth[:5]},
        {Channel.TRADES: btc[90:] + eth[5:], Channel.EVENTS: [lost]},
    )


def listed(root: Path | str) -> list[dict[str, Any]]:
    result = CliRunner().invoke(ls, [str(root), "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["store"] == str(root)
    streams: list[dict[str, Any]] = document["streams"]
    return streams


def test_streams_rows_times_days_and_gaps_match_the_rows_read(tmp_path: Path) -> None:
    root = tmp_path / "data"
    sample_store(root)
    streams = {(s["channel"], s["symbol"]): s for s in listed(root)}
    assert sorted(streams) == [
        ("events", ""), ("events", "BTC-USDT"), ("trades", "BTC-USDT"), ("trades", "ETH-USDT")
    ]  # fmt: skip
    for (channel, symbol), stream in streams.items():
        rows = hundi.read(root, exchange="binance", symbol=symbol, channel=channel)
        assert stream["rows"] == len(rows), (channel, symbol)
        assert stream["first_ns"] == rows.index[0].value
        assert stream["last_ns"] == rows.index[-1].value
        assert stream["native_symbols"] == sorted(set(rows["native_symbol"]))
        assert stream["counted_from"] == "metadata"
    btc = streams[("trades", "BTC-USDT")]
    assert (btc["days"], btc["missing_days"], btc["gaps"]) == (3, ["2024-05-03"], 1)
    assert btc["first"] == "2024-05-01T00:00:00.000000000Z"
    assert btc["last"] == "2024-05-04T00:00:00.049000000Z"
    eth = streams[("trades", "ETH-USDT")]
    assert (eth["days"], eth["missing_days"], eth["gaps"]) == (1, [], 0)
    # the gaps are the breaks hundi.coverage splits the streams' ranges at
    covered = hundi.coverage(root, by="stream").set_index("symbol")
    assert [btc["gaps"], eth["gaps"]] == list(covered.loc[["BTC-USDT", "ETH-USDT"], "gaps"])


def test_compacted_parts_are_counted_once(tmp_path: Path) -> None:
    root = tmp_path / "data"
    store = EmbeddedStore(str(root), fsync=False, compact_fanout=2, grace_s=3600, part_bytes=0)
    for i in range(8):  # 8 flushes of one partition: compactions, superseded files kept
        store.write({Channel.TRADES: [trade(MAY_1 + i * MS, i)]})
        store.flush()
    store.close()
    directory = next((root / "exchange=binance" / "channel=trades").rglob("date=*"))
    assert split_live(list_parts(directory), verify=False)[1], "no superseded file to skip"
    (stream,) = listed(root)
    assert stream["rows"] == 8


def test_counts_come_from_footers_not_rows(tmp_path: Path) -> None:
    """A part whose row data is damaged (footer intact) still lists: no row was read. Reading
    it would detect the damage (and ``hundi store check`` reports it)."""
    root = tmp_path / "data"
    write(root, {Channel.TRADES: [trade(MAY_1 + i * MS, i) for i in range(1000)]})
    (part,) = list_parts(next(root.rglob("date=*")))
    data = bytearray(part.path.read_bytes())
    data[100] ^= 0xFF  # inside the first column chunk, far from the footer
    part.path.write_bytes(bytes(data))
    (stream,) = listed(root)
    assert (stream["rows"], stream["counted_from"]) == (1000, "metadata")


def test_parts_without_statistics_are_counted_by_reading(tmp_path: Path) -> None:
    """A part written without ``ts`` statistics (another writer, an older pyarrow): its day is
    read instead, and the listing says so."""
    root = tmp_path / "data"
    write(root, {Channel.TRADES: [trade(MAY_1 + i * MS, i) for i in range(40)]})
    (part,) = list_parts(next(root.rglob("date=*")))
    table = pq.read_table(part.path)
    rewritten = part.path.with_name(part_name(part.run, part.first, part.last, part.level))
    pq.write_table(table, rewritten, write_statistics=False)
    part.path.unlink()
    assert pq.read_metadata(rewritten).row_group(0).column(0).statistics is None
    (stream,) = listed(root)
    assert (stream["rows"], stream["counted_from"]) == (40, "rows")
    assert stream["first_ns"] == MAY_1 and stream["last_ns"] == MAY_1 + 39 * MS
    assert stream["native_symbols"] == ["BTCUSDT"]


def test_the_table_names_every_stream(tmp_path: Path) -> None:
    root = tmp_path / "data"
    sample_store(root)
    result = CliRunner().invoke(ls, [str(root)])
    assert result.exit_code == 0, result.output
    assert f"{root}: 4 stream(s), 172 rows, 1 exchange(s)" in result.output
    for text in ("BTC-USDT", "BTCUSDT", "ETH-USDT", "(exchange)", "2024-05-03", "2024-05-01"):
        assert text in result.output


def test_an_empty_store_says_so(tmp_path: Path) -> None:
    result = CliRunner().invoke(ls, [str(tmp_path)])
    assert result.exit_code == 0
    assert result.output == f"{tmp_path}: nothing stored\n"
    assert listed(tmp_path) == []


@pytest.mark.slow
@pytest.mark.parametrize(
    ("target", "code", "message"),
    [
        ("nope", 2, "hundi ls: no store at 'nope' (not a directory)"),
        ("nope://x", 2, "hundi ls: unknown store scheme 'nope'"),
        # found by review: the password of a mistyped scheme was echoed
        (
            "kairosdb://u:SECRETPW@h",
            2,
            "hundi ls: unknown store scheme 'kairosdb' in 'kairosdb://u:***@h'",
        ),
        (
            "kairosdb+http://127.0.0.1:9",
            1,
            "hundi ls: KairosDB at http://127.0.0.1:9 is unreachable: Connection refused",
        ),
    ],
)
def test_a_store_that_cannot_be_listed_is_one_line(
    tmp_path: Path, target: str, code: int, message: str
) -> None:
    done = subprocess.run(
        [str(HUNDI), "ls", target], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == code, done.stderr
    assert done.stderr.startswith(message) and done.stderr.count("\n") == 1, done.stderr
    assert done.stdout == "" and "SECRETPW" not in done.stderr


def test_a_gap_another_collector_covered_is_not_listed_as_a_hole(tmp_path: Path) -> None:
    """Two collectors (two store instances: two run ids) on one stream: the first misses ids
    10..19 and stores a gap for them, the second stored them. ``hundi.coverage`` counts the gap
    as covered, and so does ``hundi ls`` (its ``gaps`` are the holes, ``covered`` the others);
    a gap neither holds (ids 40..49) stays a hole in both."""
    root = tmp_path / "data"
    first = [trade(MAY_1 + i * MS, i) for i in [*range(10), *range(20, 40), *range(50, 60)]]
    holes = [gap(MAY_1 + 20 * MS, "trades", 10, 20), gap(MAY_1 + 50 * MS, "trades", 40, 50)]
    write(root, {Channel.TRADES: first, Channel.EVENTS: holes})
    write(root, {Channel.TRADES: [trade(MAY_1 + i * MS, i) for i in range(10, 20)]})
    by_coverage = hundi.coverage(root, by="stream").set_index("channel").loc["trades"]
    assert (by_coverage["gaps"], by_coverage["covered"]) == (1, 1)
    btc = {s["channel"]: s for s in listed(root)}["trades"]
    assert (btc["gaps"], btc["covered_gaps"]) == (1, 1)


def test_a_gap_after_the_last_row_is_still_listed_as_a_hole(tmp_path: Path) -> None:
    """A loss found at shutdown is stored after the stream's last row: it ends no coverage
    range, yet it is a hole; so are two gaps with no row between them (two holes)."""
    root = tmp_path / "data"
    rows = [trade(MAY_1 + i * MS, i) for i in [*range(10), *range(30, 40)]]
    holes = [
        gap(MAY_1 + 30 * MS, "trades", 10, 20),
        gap(MAY_1 + 30 * MS + 1, "trades", 20, 30),
        gap(MAY_1 + 60 * MS, "trades", 40, 50),  # after the last row
    ]
    write(root, {Channel.TRADES: rows, Channel.EVENTS: holes})
    btc = {s["channel"]: s for s in listed(root)}["trades"]
    assert (btc["gaps"], btc["covered_gaps"]) == (3, 0)


@pytest.mark.slow
def test_a_folder_the_user_may_not_list_is_one_error_line(tmp_path: Path) -> None:
    """``hundi ls`` of a store with a folder its user cannot read was a traceback."""
    root = tmp_path / "data"
    write(root, {Channel.TRADES: [trade(MAY_1, 1)]})
    folder = root / "exchange=binance" / "channel=trades"
    folder.chmod(0)
    try:
        listed = subprocess.run(
            ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--",
             str(HUNDI), "ls", str(root)],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    finally:
        folder.chmod(0o755)
    assert listed.returncode == 1, listed.stdout + listed.stderr
    assert "Traceback" not in listed.stderr and "Permission denied" in listed.stderr
    assert listed.stderr.strip().count("\n") == 0, listed.stderr
