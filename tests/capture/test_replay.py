"""``hundi replay`` on the real Binance recordings and on our own capture format."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest
from click.testing import CliRunner

import hundi
from hundi.accounting import Accounting
from hundi.capture.cli import replay, replay_problems, run_replay
from hundi.capture.events import NO_ANSWER_AT_STOP, NO_ANSWER_DETAIL, CaptureEvent, CaptureKind
from hundi.capture.infer import infer_config
from hundi.capture.reader import read_capture
from hundi.capture.replay import replay_events
from hundi.capture.writer import RawCaptureWriter, venue_header
from hundi.exchanges import venue_factory
from hundi.exchanges.base import FrameStatus, RecordSink, RestRequest, StreamSpec, VenueProtocol
from hundi.records import STOP_DETAIL, Channel, EventKind, from_arrow
from stored import read_channel

SUMMARY_KEYS = {"frames", "records", "gaps", "resyncs", "reconnects"}


def stored(store: Path, channel: Channel) -> list[object]:
    frame = read_channel(store, "binance", channel.value)
    if frame.empty:
        return []
    return from_arrow(channel, pa.Table.from_pandas(frame.reset_index(), preserve_index=False))


def test_replay_recordings_spot_and_usdm(tmp_path: Path, recordings_dir: Path) -> None:
    for name, market, symbol in [
        ("BINANCE", "spot", "NKN-USDT"),
        ("BINANCE_FUTURES", "usdm", "SUSHI-USDT-PERP"),
    ]:
        summary_path = tmp_path / f"{name}.json"
        result = CliRunner().invoke(
            replay,
            [
                *map(str, sorted(recordings_dir.glob(f"{name}.*"))),
                "--store", str(tmp_path / name),
                "--summary-json", str(summary_path),
                "--quarantine", str(tmp_path / f"{name}.q"),
            ],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        summary = json.loads(summary_path.read_text())
        assert summary.keys() >= SUMMARY_KEYS
        assert summary["market"] == market
        frames = summary["frames"]
        assert frames["received"] == frames["processed"] + frames["filtered"] + frames["rejected"]
        assert frames["received"] > 200
        # the four depth snapshots and the exchangeInfo of NAME.0, nothing left over
        assert summary["replay"]["rest"] == {
            "answered": 5, "unanswered": 0, "unused": 0, "stopped": 0
        }  # fmt: skip
        assert all(book["synced"] for book in summary["books"])
        for channel in (Channel.TRADES, Channel.BBO, Channel.BOOK, Channel.CANDLES):
            assert summary["records"][channel.value] > 0
            frame = hundi.read(str(tmp_path / name), exchange="binance", channel=channel)
            assert len(frame) == summary["records"][channel.value]
        trades = hundi.read(str(tmp_path / name), exchange="binance", symbol=symbol)
        assert set(trades["symbol"]) == {symbol}
        # every recorded symbol is listed and trading in the recorded exchangeInfo
        events = hundi.read(str(tmp_path / name), exchange="binance", channel=Channel.EVENTS)
        assert len(events) and EventKind.INVALID_SYMBOL not in set(events["kind"])


def test_our_capture_replays_to_the_same_records(tmp_path: Path, recordings_dir: Path) -> None:
    """Re-record the futures recording in our format (protocol connection keys) and compare."""
    files = sorted(recordings_dir.glob("BINANCE_FUTURES.*"))
    config = infer_config(files, "binance", None)
    protocol = venue_factory("binance")(config)
    (spec,) = protocol.connections()
    with RawCaptureWriter(tmp_path / "raw", venues=[venue_header("binance", config)]) as writer:
        for e in read_capture(files):
            conn = spec.key if e.kind is not CaptureKind.REST else "rest"
            writer.record(e.kind, e.ts, conn, e.url, e.data, e.status)
    theirs = run_replay(files, [str(tmp_path / "theirs")])
    ours = run_replay([tmp_path / "raw"], [str(tmp_path / "ours")])
    assert ours["frames"] == theirs["frames"]
    assert ours["records"] == theirs["records"]
    for channel in Channel:
        assert stored(tmp_path / "ours", channel) == stored(tmp_path / "theirs", channel)


def test_unanswered_snapshot_leaves_book_unsynced_and_rejects_are_quarantined(
    tmp_path: Path, recordings_dir: Path
) -> None:
    files = sorted(recordings_dir.glob("BINANCE.*"))
    config = infer_config(files, "binance", None)
    (spec,) = venue_factory("binance")(config).connections()
    events = [
        e
        for e in read_capture(files)
        if not (e.kind is CaptureKind.REST and "symbol=LRCBTC" in e.url)
    ]
    garbage = CaptureEvent(CaptureKind.RECV, events[-1].ts + 1, spec.key, data=b"{nope")
    with RawCaptureWriter(tmp_path / "raw", venues=[venue_header("binance", config)]) as writer:
        for e in [*events, garbage]:
            conn = spec.key if e.kind is not CaptureKind.REST else "rest"
            writer.record(e.kind, e.ts, conn, e.url, e.data, e.status)
    quarantine = tmp_path / "rejected.jsonl"
    summary = run_replay([tmp_path / "raw"], [str(tmp_path / "s")], quarantine_path=quarantine)
    books = {book["symbol"]: book for book in summary["books"]}
    assert books["LRC-BTC"]["synced"] is False
    assert books["NKN-USDT"]["synced"] is True
    assert summary["replay"]["rest"]["unanswered"] == 1
    assert summary["frames"]["rejected_reasons"] == {"malformed_json": 1}
    (line,) = quarantine.read_text().splitlines()
    assert json.loads(line)["data"] == "{nope"
    assert summary["balanced"] is True


def test_a_request_the_live_run_stopped_before_its_answer_stays_unanswered_as_live(
    tmp_path: Path, recordings_dir: Path
) -> None:
    """The live collector cancels a REST request still in flight when it stops and records
    that it got no answer: the replay leaves it unanswered too, and that is no infidelity
    (it used to say INCOMPLETE, exit 1, for a faithful capture)."""
    files = sorted(recordings_dir.glob("BINANCE.*"))
    config = infer_config(files, "binance", None)
    (spec,) = venue_factory("binance")(config).connections()
    with RawCaptureWriter(tmp_path / "raw", venues=[venue_header("binance", config)]) as writer:
        for e in read_capture(files):
            conn = spec.key if e.kind is not CaptureKind.REST else "rest"
            if e.kind is CaptureKind.REST and "symbol=LRCBTC" in e.url:
                e = CaptureEvent(e.kind, e.ts, e.conn, e.url, NO_ANSWER_DETAIL, NO_ANSWER_AT_STOP)
            writer.record(e.kind, e.ts, conn, e.url, e.data, e.status)
    summary = run_replay([tmp_path / "raw"], [str(tmp_path / "s")])
    books = {book["symbol"]: book for book in summary["books"]}
    assert books["LRC-BTC"]["synced"] is False  # the marker is no snapshot
    assert books["NKN-USDT"]["synced"] is True
    assert summary["replay"]["rest"] == {
        "answered": 4, "unanswered": 0, "unused": 0, "stopped": 1
    }  # fmt: skip
    assert replay_problems(summary) == []


class AsksAfterEachClose(VenueProtocol):
    """Wants one REST call after every close of its socket (a venue fetching back what a
    drop may have hidden)."""

    exchange = "testex"

    def __init__(self) -> None:
        self.owed = 0

    def connections(self) -> list[StreamSpec]:
        return [StreamSpec(key="main", url="ws://venue/ws")]

    def receive(self, conn_key: str, data: bytes, recv_ns: int, out: RecordSink) -> FrameStatus:
        return FrameStatus.FILTERED

    def on_close(self, conn_key: str, now_ns: int, out: RecordSink) -> None:
        self.owed += 1

    def due_requests(self, now_ns: int) -> list[RestRequest]:
        owed, self.owed = self.owed, 0
        return [RestRequest(key="X", url="http://venue/trades?symbol=X")] * owed


def test_the_replay_asks_nothing_new_after_a_captured_clean_stop() -> None:
    """Live, the REST loop asks the venue for new calls only until the stop begins; a replay
    that kept asking after the captured clean stop found "unanswered" requests the live run
    never made, and called a faithful capture incomplete. A drop before the stop is asked."""
    url = "ws://venue/ws"
    events = [
        CaptureEvent(CaptureKind.OPEN, 1, "main", url),
        CaptureEvent(CaptureKind.RECV, 2, "main", data=b"{}"),
        CaptureEvent(CaptureKind.CLOSE, 3, "main", data=b"connection lost"),
        CaptureEvent(CaptureKind.REST, 4, "rest", "http://venue/trades?symbol=X", b"[]", 200),
        CaptureEvent(CaptureKind.OPEN, 5, "main", url),
        CaptureEvent(CaptureKind.CLOSE, 6, "main", data=f"{STOP_DETAIL}: done".encode()),
    ]
    venue = AsksAfterEachClose()
    stats = replay_events(events, venue, lambda batch: None, Accounting())
    assert (stats.rest_answered, stats.rest_unanswered, stats.rest_unused) == (1, 0, 0)


def test_replay_errors_are_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(replay, [str(tmp_path / "missing.hcap.gz"), "--store", "x"])
    assert result.exit_code == 2
    assert "no such capture file" in result.output
    assert "Traceback" not in result.output
    bad = tmp_path / "bad.0"
    bad.write_text("this is not a recording line\n")
    result = CliRunner().invoke(replay, [str(bad), "--store", str(tmp_path / "s")])
    assert result.exit_code == 2
    assert result.output.count("\n") == 1


@pytest.mark.parametrize("where", ["a directory", "a missing directory"])
def test_a_summary_json_that_cannot_be_written_is_refused_before_storing(
    tmp_path: Path, recordings_dir: Path, where: str
) -> None:
    """Found by review: a traceback after every record was stored."""
    target = tmp_path if where == "a directory" else tmp_path / "missing" / "summary.json"
    files = sorted(str(p) for p in recordings_dir.glob("BINANCE_FUTURES.*"))
    store = tmp_path / "s"
    result = CliRunner().invoke(
        replay, [*files, "--store", str(store), "--summary-json", str(target)]
    )
    assert result.exit_code == 2, result.output
    assert result.stderr.count("\n") == 1 and "--summary-json" in result.stderr, result.stderr
    assert "Traceback" not in result.output and not store.exists()


def test_replay_without_a_store_is_refused(tmp_path: Path) -> None:
    """It used to replay, store nothing and exit 0."""
    capture = tmp_path / "any.0"
    capture.write_text("")
    result = CliRunner().invoke(replay, [str(capture)])
    assert result.exit_code == 2
    assert result.stderr == "hundi replay: nothing would be stored: give --store URL or --dry-run\n"
    result = CliRunner().invoke(replay, [str(capture), "--dry-run", "--store", "x"])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "--dry-run stores nothing" in result.stderr
    assert not (tmp_path / "x").exists()


def test_a_dry_run_parses_everything_and_says_it_stored_nothing(
    tmp_path: Path, recordings_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    files = sorted(str(p) for p in recordings_dir.glob("BINANCE_FUTURES.*"))
    summary_path = tmp_path / "summary.json"
    result = CliRunner().invoke(replay, [*files, "--dry-run", "--summary-json", str(summary_path)])
    assert result.exit_code == 0, result.output
    summary = json.loads(summary_path.read_text())
    assert summary["stores"] == [] and summary["records"]["trades"] > 0
    parsed = sum(summary["records"].values())
    assert result.stderr == f"hundi replay: dry run: {parsed} records parsed, nothing stored\n"
    assert "outcome: ok (exit 0)" in result.stdout
    assert "records parsed: " in result.stdout and "records stored" not in result.stdout
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]  # no store written


@pytest.mark.parametrize(
    ("name", "wrong", "right"), [("BINANCE", "usdm", "spot"), ("BINANCE_FUTURES", "spot", "usdm")]
)
def test_a_wrong_market_is_an_error_not_a_silent_replay(
    tmp_path: Path, recordings_dir: Path, name: str, wrong: str, right: str
) -> None:
    """Spot recordings replayed as USD-M stored PERP symbols and no book rows, exit 0."""
    files = [str(p) for p in sorted(recordings_dir.glob(f"{name}.*"))]
    result = CliRunner().invoke(replay, [*files, "--store", str(tmp_path / "s"), "--market", wrong])
    assert result.exit_code == 2, result.output
    assert f"the capture is Binance {right}" in result.output
    assert f"give --market {right}" in result.output
    assert not (tmp_path / "s").exists() or not any((tmp_path / "s").rglob("*.parquet"))


def test_unanswered_requests_make_the_replay_exit_non_zero(
    tmp_path: Path, recordings_dir: Path
) -> None:
    """A capture that cannot answer the protocol's snapshot request replays, stores what it can,
    and says so with exit 1 instead of "ok"."""
    files = sorted(recordings_dir.glob("BINANCE.*"))
    config = infer_config(files, "binance", None)
    (spec,) = venue_factory("binance")(config).connections()
    with RawCaptureWriter(tmp_path / "raw", venues=[venue_header("binance", config)]) as writer:
        for e in read_capture(files):
            if e.kind is CaptureKind.REST and "symbol=LRCBTC" in e.url:
                continue
            conn = spec.key if e.kind is not CaptureKind.REST else "rest"
            writer.record(e.kind, e.ts, conn, e.url, e.data, e.status)
    summary_path = tmp_path / "summary.json"
    result = CliRunner().invoke(
        replay,
        [
            str(tmp_path / "raw"),
            "--store",
            str(tmp_path / "s"),
            "--summary-json",
            str(summary_path),
        ],
    )
    assert result.exit_code == 1, result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("outcome: INCOMPLETE (exit 1): 1 REST request(s) the capture holds")
    assert "books not synced: LRC-BTC" in result.output
    assert json.loads(summary_path.read_text())["records"]["trades"] > 0  # stored all the same


def test_a_capture_without_frames_replays_nothing_and_says_so(
    tmp_path: Path, recordings_dir: Path
) -> None:
    """A capture without one frame (the socket opened, the REST answers came, nothing was
    received) is not "ok": exit 3, as collect's run that received no frame."""
    files = sorted(recordings_dir.glob("BINANCE.*"))
    config = infer_config(files, "binance", None)
    (spec,) = venue_factory("binance")(config).connections()
    with RawCaptureWriter(tmp_path / "raw", venues=[venue_header("binance", config)]) as writer:
        for e in read_capture(files):
            if e.kind is not CaptureKind.RECV:
                conn = spec.key if e.kind is not CaptureKind.REST else "rest"
                writer.record(e.kind, e.ts, conn, e.url, e.data, e.status)
    result = CliRunner().invoke(replay, [str(tmp_path / "raw"), "--store", str(tmp_path / "s")])
    assert result.exit_code == 3, result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("outcome: NOTHING COLLECTED (exit 3): no frame received"), last


def test_replay_computes_series_and_says_why_one_produced_nothing(
    tmp_path: Path, recordings_dir: Path
) -> None:
    """``--series`` as collect's, on the capture's clock; a series too long for the capture
    (a 1 h flow window) is reported with why, in the summary and the printed lines."""
    files = [str(p) for p in sorted(recordings_dir.glob("BINANCE.*"))]
    summary_path = tmp_path / "summary.json"
    result = CliRunner().invoke(
        replay,
        [*files, "--store", str(tmp_path / "s"), "--summary-json", str(summary_path),
         "--quarantine", str(tmp_path / "q"), "--series", "bars:1s,flow:1h@1m"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(summary_path.read_text())
    specs = {entry["series"]: entry for entry in summary["series"]["specs"]}
    bars = hundi.read(str(tmp_path / "s"), exchange="binance", channel=Channel.BARS)
    assert specs["bars:1s"]["records"] == len(bars) == summary["records"]["bars"] > 0
    flow = specs["flow:1h@1m"]
    assert flow["records"] == 0
    assert flow["why_none"].startswith("a value needs a full 1h window of 1m bars")
    assert f"series flow:1h@1m: nothing produced: {flow['why_none']}" in result.output
    # a series whose input the capture does not hold is bad input: one line, exit 2
    result = CliRunner().invoke(
        replay, [*files, "--store", str(tmp_path / "t"), "--series", "bars:1s,bogus:1"]
    )
    assert result.exit_code == 2 and result.output.count("\n") == 1, result.output


@pytest.mark.slow
def test_replay_shows_progress_on_a_terminal_only(tmp_path: Path, recordings_dir: Path) -> None:
    """A long replay was silence then a dump: on a terminal (stderr a TTY) a progress line
    shows; in a pipe (logs, scripts) nothing but the summary."""
    files = [str(p) for p in sorted(recordings_dir.glob("BINANCE.*"))]
    args = [sys.executable, "-m", "hundi", "replay", *files, "--quarantine", str(tmp_path / "q")]
    piped = subprocess.run(
        [*args, "--store", str(tmp_path / "a")], capture_output=True, text=True, timeout=120
    )
    assert piped.returncode == 0 and piped.stderr == "", piped.stderr
    main, sub = pty.openpty()
    try:
        with subprocess.Popen(
            [*args, "--store", str(tmp_path / "b")], stdout=subprocess.PIPE, stderr=sub
        ) as child:
            os.close(sub)
            shown = b""
            while True:
                try:
                    chunk = os.read(main, 4096)
                except OSError:  # the child closed the terminal
                    break
                if not chunk:
                    break
                shown += chunk
            assert child.wait(timeout=120) == 0
            assert child.stdout is not None
            out = child.stdout.read().decode()
    finally:
        os.close(main)
    assert b"replaying: " in shown and b"events, capture at 20" in shown, shown[-500:]
    assert out.strip().splitlines()[-1] == "outcome: ok (exit 0)"
