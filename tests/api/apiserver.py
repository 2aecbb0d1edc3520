"""Test helpers: real exchange recordings replayed into a real store, and ``hundi serve``
running as its own process on a real socket."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from children import Child, spawn
from hundi.records import Channel, from_arrow
from hundi.stores.base import open_store

HUNDI = Path(sys.executable).with_name("hundi")
#: Binance USD-M futures, 2021-07-22: trades, bbo, book and events of 4 perpetuals (README of
#: the recordings); SUSHI-USDT-PERP has the most of each
RECORDING = "BINANCE_FUTURES"
SYMBOL = "SUSHI-USDT-PERP"


def replay(recordings: Path, store_url: str, work: Path) -> None:
    """``hundi replay`` of the recording into the store (as live collection would write it)."""
    files = sorted(str(p) for p in recordings.glob(f"{RECORDING}.*"))
    subprocess.run(
        [str(HUNDI), "replay", *files, "--store", store_url,
         "--quarantine", str(work / "quarantine.jsonl"), "--summary-json", str(work / "s.json")],
        check=True, capture_output=True, cwd=work,
    )  # fmt: skip


def records(channel: Channel, frame: pd.DataFrame) -> list[Any]:
    """A series frame (as ``hundi.series`` returns it) → records (NaN stays NaN: an empty
    bar's vwap)."""
    flat = frame.reset_index()
    columns = {}
    for name in flat.columns:
        column = flat[name]
        if isinstance(column.dtype, pd.DatetimeTZDtype):
            columns[name] = pa.array(column.array.asi8)
        elif column.dtype.kind in "biuf":
            columns[name] = pa.array(column.to_numpy())
        else:
            columns[name] = pa.array(column.astype(str).tolist())
    return from_arrow(channel, pa.table(columns))


def write_series(store_url: str, frames: dict[Channel, list[pd.DataFrame]]) -> None:
    """Store series computed offline, as the collector would have stored them live."""
    store = open_store(store_url)
    try:
        for channel, parts in frames.items():
            for frame in parts:
                store.write({channel: records(channel, frame)})
        store.flush()
    finally:
        store.close()


def rows_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """API rows → a float frame indexed by UTC time."""
    frame = pd.DataFrame(rows)
    frame.index = pd.to_datetime(frame.pop("time"), unit="ms", utc=True)
    return frame.astype(float)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Reply:
    status: int
    body: Any
    headers: dict[str, str]


@dataclass
class Api:
    base: str
    process: Child

    def get(self, path: str, token: str | None = None) -> Reply:
        """GET a path (with its query string) and parse the JSON body."""
        request = urllib.request.Request(self.base + path)
        if token is not None:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=120) as reply:
                return Reply(reply.status, json.load(reply), dict(reply.headers))
        except urllib.error.HTTPError as error:
            return Reply(error.code, json.load(error), dict(error.headers))


@contextmanager
def serve(
    store_url: str | None, cwd: Path, *extra: str, env: dict[str, str] | None = None
) -> Iterator[Api]:
    """``hundi serve`` in a subprocess; waits until it answers HTTP, stops it afterwards."""
    port = free_port()
    args = [str(HUNDI), "serve", "--port", str(port), *extra]
    if store_url is not None:
        args += ["--store", store_url]
    # stdout and stderr to files (spawn): an unread pipe fills up and blocks the server
    process = spawn(args, cwd=cwd, env={**os.environ, **(env or {})})
    api = Api(f"http://127.0.0.1:{port}", process)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                output = process.stdout_text() + process.stderr_text()
                raise AssertionError(f"hundi serve exited {process.returncode}: {output}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError("hundi serve did not listen within 60 s") from None
                time.sleep(0.1)
        yield api
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
