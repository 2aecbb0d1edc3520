"""Raw capture files: writer → reader round trip, rotation, crash tolerance, format detection."""

from __future__ import annotations

import gzip
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hundi.capture.events import CaptureEvent, CaptureKind
from hundi.capture.format import VenueHeader
from hundi.capture.quarantine import Quarantine
from hundi.capture.reader import CaptureFormatError, headers, read_capture, read_capture_file
from hundi.capture.writer import RawCaptureWriter

T0 = 1_714_521_600_000_000_000


def sample_events(n: int, conn: str = "spot-public-0") -> list[CaptureEvent]:
    events = [CaptureEvent(CaptureKind.OPEN, T0, conn, url="wss://example/stream")]
    events.append(CaptureEvent(CaptureKind.SENT, T0 + 1, conn, data=b'{"method":"SUBSCRIBE"}'))
    for i in range(n):
        events.append(CaptureEvent(CaptureKind.RECV, T0 + 10 + i, conn, data=b'{"i":%d}' % i))
    events.append(
        CaptureEvent(CaptureKind.REST, T0 + 10 + n, "rest", url="https://x/depth?symbol=A",
                     data=b"{}", status=429)
    )  # fmt: skip
    events.append(CaptureEvent(CaptureKind.CLOSE, T0 + 11 + n, conn, data=b"1000 bye"))
    return events


def write_all(writer: RawCaptureWriter, events: list[CaptureEvent]) -> None:
    for e in events:
        writer.record(e.kind, e.ts, e.conn, e.url, e.data, e.status)


def test_round_trip_with_header(tmp_path: Path) -> None:
    venue = VenueHeader("binance", "spot", ["BTCUSDT"], ["trades", "book"])
    events = sample_events(100)
    with RawCaptureWriter(tmp_path, venues=[venue]) as writer:
        write_all(writer, events[:50])
        writer.flush()
        write_all(writer, events[50:])
    assert list(read_capture([tmp_path])) == events
    (header,) = headers([tmp_path])
    assert header.venues == [venue]
    assert header.run == writer.run
    with gzip.open(writer.paths[0]) as f:  # standard gzip tools read it too
        assert len(f.read()) > 0


def test_text_frames_are_stored_as_bytes(tmp_path: Path) -> None:
    with RawCaptureWriter(tmp_path) as writer:
        writer.record(CaptureKind.RECV, T0, "c", data='{"a":"é"}')
    (event,) = read_capture(writer.paths)
    assert event.data == '{"a":"é"}'.encode()


def test_rotation_gives_independently_readable_files(tmp_path: Path) -> None:
    events = sample_events(300)
    with RawCaptureWriter(tmp_path, rotate_bytes=200) as writer:
        for start in range(0, len(events), 20):
            write_all(writer, events[start : start + 20])
            writer.flush()
    assert len(writer.paths) > 5
    per_file = [list(read_capture_file(p)) for p in writer.paths]
    assert all(per_file)
    assert [e for chunk in per_file for e in chunk] == events
    assert [h.sequence for h in headers(writer.paths)] == list(range(len(writer.paths)))


def test_memory_bound_writes_inline(tmp_path: Path) -> None:
    events = sample_events(1000)
    with RawCaptureWriter(tmp_path, max_buffer_bytes=2000, flush_interval_s=3600) as writer:
        write_all(writer, events)
        assert writer.events_written > 900  # written by record() itself, not the thread
    assert list(read_capture([tmp_path])) == events


def test_truncated_tail_is_ignored_but_middle_corruption_is_an_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    events = sample_events(50)
    with RawCaptureWriter(tmp_path) as writer:
        write_all(writer, events[:20])
        writer.flush()
        write_all(writer, events[20:])
    path = writer.paths[0]
    whole = path.read_bytes()
    path.write_bytes(whole[:-7])  # the last member torn by a crash
    assert list(read_capture_file(path)) == events[:20]
    # found by review: said nowhere, so a replay of it was "ok" without a word
    (torn,) = [r.getMessage() for r in caplog.records if "not replayed" in r.getMessage()]
    assert str(path) in torn and "a crash cut its last write" in torn
    caplog.clear()
    path.write_bytes(whole)
    assert list(read_capture_file(path)) == events
    assert not [r for r in caplog.records if "not replayed" in r.getMessage()]
    broken = tmp_path / "broken.hcap.gz"
    broken.write_bytes(whole[:40] + b"\x00" * 64 + whole[104:])
    with pytest.raises(CaptureFormatError, match="broken"):
        list(read_capture_file(broken))


def test_damage_before_whole_blocks_is_an_error_not_a_torn_tail(tmp_path: Path) -> None:
    """Found by review: damage anywhere in a file's last MiB (a small file: anywhere) was taken
    for a crash's torn last write; the whole blocks after it were dropped with a warning."""
    events = sample_events(60)
    with RawCaptureWriter(tmp_path) as writer:
        for first in range(0, 60, 10):  # six blocks
            write_all(writer, events[first : first + 10])
            writer.flush()
    path = writer.paths[0]
    whole = path.read_bytes()
    starts = [i for i in range(len(whole)) if whole.startswith(b"\x1f\x8b\x08", i)]
    middle = starts[3] + 30  # inside the third block of events
    damaged = bytearray(whole)
    for i in range(middle, middle + 8):
        damaged[i] ^= 0xFF
    path.write_bytes(bytes(damaged))
    with pytest.raises(CaptureFormatError, match="corrupt compressed data"):
        list(read_capture_file(path))


_WRITER = textwrap.dedent(
    """
    import sys, time
    from hundi.capture.writer import RawCaptureWriter
    writer = RawCaptureWriter(sys.argv[1], flush_interval_s=0.05)
    i = 0
    while True:
        writer.record("recv", 1_000 + i, "c", "", b"frame %d" % i, 0)
        i += 1
        if i % 1000 == 0:
            writer.flush()
            print(i, flush=True)
    """
)


def test_kill_9_keeps_everything_flushed(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    flushed = 0
    while flushed < 20_000:
        flushed = int(proc.stdout.readline())
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    data = [e.data for e in read_capture([tmp_path])]
    assert len(data) >= flushed
    assert data == [b"frame %d" % i for i in range(len(data))]


def test_recordings_and_ours_merge_in_time_order(tmp_path: Path, recordings_dir: Path) -> None:
    recording = recordings_dir / "BINANCE.ws.1.0"
    theirs = list(read_capture([recording]))
    middle = theirs[len(theirs) // 2].ts
    with RawCaptureWriter(tmp_path / "ours") as writer:
        writer.record(CaptureKind.RECV, middle, "mine", data=b"x")
    merged = list(read_capture([recording, tmp_path / "ours"]))
    assert len(merged) == len(theirs) + 1
    assert [e.ts for e in merged] == sorted(e.ts for e in merged)
    assert theirs[0].kind is CaptureKind.OPEN


def test_quarantine_lines_and_rotation(tmp_path: Path) -> None:
    path = tmp_path / "q" / "rejected.jsonl"
    with Quarantine(path, max_bytes=400, backups=2) as quarantine:
        for i in range(20):
            quarantine.add(T0 + i, "spot-public-0", "malformed_json", b"\xff{not json %d" % i)
    assert quarantine.count == 20
    assert sorted(p.name for p in path.parent.iterdir()) == [
        "rejected.jsonl",
        "rejected.jsonl.1",
        "rejected.jsonl.2",
    ]
    last = [json.loads(line) for line in path.read_text().splitlines()][-1]
    assert last["reason"] == "malformed_json"
    assert last["conn"] == "spot-public-0"
    assert last["ts"] == T0 + 19
    assert last["data"] == "\\xff{not json 19"
    assert last["time"].startswith("2024-05-01T00:00:00")
    assert "venue" not in last  # only a collector's hooks name it


def test_a_venue_s_quarantine_hook_names_the_venue_in_each_line(tmp_path: Path) -> None:
    """Venues share connection keys ("public" is OKX's, Bybit's, Kraken's...): a collector's
    rejected frames say whose they were."""
    path = tmp_path / "rejected.jsonl"
    with Quarantine(path) as quarantine:
        quarantine.for_venue("okx", "swap")(T0, "public", "unknown_symbol", b"{}")
        quarantine.for_venue("okx", "spot")(T0 + 1, "public", "unknown_symbol", b"{}")
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(x["venue"], x["conn"]) for x in lines] == [
        ("okx/swap", "public"),
        ("okx/spot", "public"),
    ]


def test_damage_before_whole_blocks_full_of_header_like_bytes_is_an_error(tmp_path: Path) -> None:
    """Found by a third review: only the first 64 places that looked like a block's start
    were tried, and a big block holds many (incompressible bytes are stored verbatim), so
    damage early in one was taken for a torn tail and the whole blocks after it dropped."""
    noise = random.Random(5)
    header_like = b"\x1f\x8b\x08"
    frames = [
        CaptureEvent(
            CaptureKind.RECV,
            T0 + i,
            "c",
            data=header_like.join(noise.randbytes(500) for _ in range(40)),
        )
        for i in range(8)
    ]
    with RawCaptureWriter(tmp_path) as writer:
        for first in range(0, 8, 2):  # four blocks, ~80 header-like places each
            write_all(writer, frames[first : first + 2])
            writer.flush()
    path = writer.paths[0]
    whole = path.read_bytes()
    assert whole.count(b"\x1f\x8b\x08") > 200
    starts = [i for i in range(len(whole)) if whole.startswith(b"\x1f\x8b\x08", i)]
    damaged = bytearray(whole)
    first_block = next(at for at in starts if at > 0)  # after the header member
    damaged[first_block + 40 : first_block + 48] = b"\xff" * 8
    path.write_bytes(bytes(damaged))
    with pytest.raises(CaptureFormatError, match="before whole blocks"):
        list(read_capture_file(path))
