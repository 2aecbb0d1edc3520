"""``hundi collect`` as a user runs it: subprocesses against the Binance simulator."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from children import spawn
from hundi.records import Channel
from hundi.simulator.process import SimulatorProcess
from hundi.stores.base import open_store

pytestmark = pytest.mark.slow

HUNDI = str(Path(sys.executable).parent / "hundi")


def env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "HUNDI_LOG_PATH": str(tmp_path / "logs" / "hundi.log"),
        "HUNDI_LOG_UPDATE_INTERVAL": "0.2",
        "HUNDI_STATUS_LINE_INTERVAL": "0.2",  # piped: tests wait for a status line
        **extra,
    }


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def read_summary(path: Path) -> dict[str, Any]:
    summary: dict[str, Any] = json.loads(path.read_text())
    return summary


@pytest.fixture(scope="module")
def simulator() -> Any:
    with SimulatorProcess(["--rate", "400", "--symbols", "BTCUSDT,ETHUSDT"]) as sim:
        yield sim


def test_sigterm_flushes_everything_to_the_store(
    simulator: SimulatorProcess, tmp_path: Path
) -> None:
    store = tmp_path / "data"
    summary_path = tmp_path / "summary.json"
    proc = spawn(
        [
            HUNDI,
            "collect",
            "binance",
            "--symbols",
            "BTCUSDT,ETHUSDT",
            "--channels",
            "trades,bbo,book",
            "--endpoint",
            simulator.ws_url,
            "--rest-endpoint",
            simulator.rest_url,
            "--store",
            str(store),
            "--summary-json",
            str(summary_path),
            "--flush-interval",
            "5",  # longer than the run: only the shutdown flush can store the data
            "--raw",
            str(tmp_path / "raw"),
        ],
        stdout=subprocess.PIPE,
        env=env(tmp_path),
    )
    assert proc.stdout is not None
    # stop once the run holds data of every kind: frames in, and both books synced (their
    # snapshot is in, so diffs and trades have been arriving for a while)
    deadline = time.monotonic() + 60
    line = ""
    while not (" frames " in line and " frames 0 " not in line and " books 2/2 synced" in line):
        assert time.monotonic() < deadline, (
            f"no status line with frames and both books synced within 60 s; last: {line!r}\n"
            + proc.stderr_text()[-3000:]
        )
        line = proc.stdout.readline()
        assert line, f"the collector closed its stdout\n{proc.stderr_text()[-3000:]}"
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    err = proc.stderr_text()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    summary = read_summary(summary_path)
    assert summary["stop_reason"] == "SIGTERM"
    assert summary["balanced"]
    assert summary["frames"]["received"] == (
        summary["frames"]["processed"]
        + summary["frames"]["filtered"]
        + summary["frames"]["rejected"]
    )
    assert summary["records"]["trades"] > 0 and summary["records"]["book"] > 0
    stored = open_store(str(store), read_only=True)
    for channel in (Channel.TRADES, Channel.BBO, Channel.BOOK):
        frame = stored.read(exchange="binance", symbol=None, channel=channel)
        assert len(frame) == summary["records"][channel.value]
    assert "records stored" in out
    # Raw capture: every frame plus opens, sent subscriptions, REST responses and the close.
    assert summary["raw"]["events"] > summary["frames"]["received"]
    assert all(Path(p).stat().st_size > 0 for p in summary["raw"]["files"])


def test_unreachable_endpoint_retries_until_duration_then_says_nothing_collected(
    tmp_path: Path,
) -> None:
    """Not "ok", exit 0 (as it was): exit 3, the outcome says why in words, and the retry
    delays grow."""
    port = free_port()
    summary_path = tmp_path / "s.json"
    result = subprocess.run(
        [
            HUNDI,
            "collect",
            "binance",
            "--symbols",
            "BTCUSDT",
            "--channels",
            "trades",
            "--endpoint",
            f"ws://127.0.0.1:{port}",
            "--rest-endpoint",
            f"http://127.0.0.1:{port}",
            "--store",
            str(tmp_path / "data"),
            "--duration",
            "2",
            "--summary-json",
            str(summary_path),
        ],
        capture_output=True,
        text=True,
        env=env(tmp_path),
        timeout=30,
    )
    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr
    where = f"cannot connect to 127.0.0.1:{port}: connection refused"
    retries = [line for line in result.stderr.splitlines() if "retry #" in line]
    assert len(retries) >= 2 and all(where in line for line in retries), retries
    delays = [float(line.rsplit(" in ", 1)[1].rstrip("s")) for line in retries]
    assert delays == sorted(delays), retries
    rest = [line for line in result.stderr.splitlines() if "REST GET" in line]
    assert rest and all(f"failed: {where}" in line for line in rest), rest
    assert "ClientConnectorError" not in result.stderr and "ssl:default" not in result.stderr
    summary = read_summary(summary_path)
    stream = next(iter(summary["streams"].values()))
    assert stream["connect_failures"] == len(retries)
    assert summary["frames"]["received"] == 0 and summary["balanced"]
    assert summary["outcome"]["result"] == "nothing_collected"
    assert summary["outcome"]["exit_code"] == 3
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("outcome: NOTHING COLLECTED (exit 3): no frame received")
    assert where in last
    log_text = (tmp_path / "logs" / "hundi.log").read_text()
    assert "cannot connect" in log_text


def test_unwritable_store_is_one_clear_error_and_exit_2(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    result = subprocess.run(
        [HUNDI, "collect", "binance", "--symbols", "BTCUSDT", "--store", str(blocker / "data")],
        capture_output=True,
        text=True,
        env=env(tmp_path),
        timeout=30,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("Error: store path") and "not writable" in result.stderr


@pytest.mark.parametrize(
    ("args", "extra_env", "message"),
    [
        (["--duration", "-1"], {}, "Invalid value for '--duration'"),
        (["--duration", "nan"], {}, "'nan' is not a finite number"),
        (["--flush-interval", "nan"], {}, "'nan' is not a finite number"),
        (["--stale-after", "inf"], {}, "'inf' is not a finite number"),
        (["--channels", "trades,depth"], {}, "unknown channel 'depth'"),
        (["--market", "options"], {}, "market"),
        ([], {"HUNDI_LOG_QUEUE_MAX_SIZE": "abc"}, "HUNDI_LOG_QUEUE_MAX_SIZE must be a positive"),
    ],
)
def test_bad_values_exit_2_without_traceback(
    tmp_path: Path, args: list[str], extra_env: dict[str, str], message: str
) -> None:
    result = subprocess.run(
        [HUNDI, "collect", "binance", "--symbols", "BTCUSDT", "--store", str(tmp_path), *args],
        capture_output=True,
        text=True,
        env=env(tmp_path, **extra_env),
        timeout=30,
    )
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_a_store_down_for_the_whole_run_is_not_ok_and_does_not_hold_the_stop(
    simulator: SimulatorProcess, tmp_path: Path
) -> None:
    """Cassandra unreachable for the whole run: it was `store ...: 0 records, ok`, exit 0,
    after 33 s for `--duration 3`. Now: exit 1, the records are said to be in the spool, and
    the stop after the duration takes seconds, not the 30 s shutdown deadline."""
    summary_path = tmp_path / "s.json"
    started = time.monotonic()
    result = subprocess.run(
        [HUNDI, "collect", "binance", "--symbols", "BTCUSDT", "--channels", "trades,bbo",
         "--endpoint", simulator.ws_url, "--rest-endpoint", simulator.rest_url,
         "--store", f"cassandra://127.0.0.1:{free_port()}/hundi_test", "--duration", "3",
         "--summary-json", str(summary_path)],
        capture_output=True, text=True, timeout=120,
        env=env(tmp_path, HUNDI_SPOOL_DIR=str(tmp_path / "spool"), CASSANDRA_CONNECT_TIMEOUT="1"),
    )  # fmt: skip
    took = time.monotonic() - started
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    summary = read_summary(summary_path)
    (store,) = summary["stores"]
    spooled = sum(store["spooled"].values())
    assert spooled > 0 and sum(store["records"].values()) == 0
    assert summary["outcome"]["result"] == "incomplete" and summary["outcome"]["exit_code"] == 1
    assert (
        f"{spooled} records not stored, kept in the outage spool"
        in summary["outcome"]["reasons"][0]
    )
    lines = result.stdout.strip().splitlines()
    assert lines[-1].startswith("outcome: INCOMPLETE (exit 1): store cassandra://")
    assert any("NOT STORED" in line and line.startswith("store cassandra://") for line in lines)
    # the wall time: collecting ends at the duration and stopping is bounded (the grace)
    assert 2.9 <= summary["duration_s"] < 6.0 and summary["stopping_s"] < 25.0, summary
    assert took < 3 + 10 + 30  # the interpreter's start on a loaded machine included


def test_a_series_that_produced_nothing_is_reported_with_why(
    simulator: SimulatorProcess, tmp_path: Path
) -> None:
    """`flow:1m@1s` in a short run produces nothing: the summary lists it with why, next to
    the series that did produce (counted from what the collector stored)."""
    summary_path = tmp_path / "s.json"
    result = subprocess.run(
        [HUNDI, "collect", "binance", "--symbols", "BTCUSDT", "--channels", "trades",
         "--endpoint", simulator.ws_url, "--rest-endpoint", simulator.rest_url,
         "--store", str(tmp_path / "data"), "--duration", "3", "--flush-interval", "0.2",
         "--series", "bars:1s,flow:1m@1s", "--summary-json", str(summary_path)],
        capture_output=True, text=True, timeout=120, env=env(tmp_path),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    specs = {entry["series"]: entry for entry in read_summary(summary_path)["series"]["specs"]}
    stored = open_store(str(tmp_path / "data")).read(
        exchange="binance", symbol=None, channel=Channel.BARS
    )
    assert specs["bars:1s"]["records"] == len(stored) > 0 and "why_none" not in specs["bars:1s"]
    flow = specs["flow:1m@1s"]
    assert flow["records"] == 0
    assert flow["why_none"].startswith("a value needs a full 1m window of 1s bars"), flow
    assert f"series flow:1m@1s: nothing produced: {flow['why_none']}" in result.stdout


def test_two_feeds_of_one_venue_cannot_share_a_raw_capture(tmp_path: Path) -> None:
    """A capture tells venues apart by exchange and market: two Binance spot feeds (into two
    stores) would replay as one with the second's symbols (found by review). One line, exit 2,
    before anything connects."""
    (tmp_path / "feeds.yaml").write_text(
        "feeds:\n"
        "  - {exchange: binance, market: spot, symbols: BTCUSDT, channels: [trades], stores: [a]}\n"
        "  - {exchange: binance, market: spot, symbols: ETHUSDT, channels: [trades], stores: [b]}\n"
    )
    result = subprocess.run(
        [HUNDI, "collect", "--config", str(tmp_path / "feeds.yaml"), "--raw", "raw"],
        capture_output=True, text=True, env=env(tmp_path), timeout=30, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert "--raw: binance/spot has several feeds" in result.stderr
