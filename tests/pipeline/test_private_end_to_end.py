"""Authenticated streams end to end: simulator → ``hundi collect`` → store, over real sockets.

The simulator emits order lifecycles to whoever is subscribed and records what it delivered;
the stored orders and fills must be exactly that (minus only what a stored gap explains), with
faults that end subscriptions, expire listen keys and drop sockets. Credentials must never
appear in any output: stdout/stderr, logs, raw captures, stored data, summary.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import hundi
from hundi.records import Channel
from hundi.simulator.process import SimulatorProcess
from stored import read_channel

pytestmark = pytest.mark.slow

HUNDI = [sys.executable, "-m", "hundi"]
KEY, SECRET = "e2eKEY-7f3a9c21b4", "e2eSECRET-d81e55f0aa"


@pytest.fixture
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """The simulator's account (and, unless a test says otherwise, the collector's)."""
    monkeypatch.setenv("BINANCE_API_KEY", KEY)
    monkeypatch.setenv("BINANCE_API_SECRET", SECRET)


def truth(sim: SimulatorProcess) -> dict[str, Any]:
    with urllib.request.urlopen(f"{sim.rest_url}/sim/private", timeout=10) as answer:
        found: dict[str, Any] = json.load(answer)
    return found


def collect(
    sim: SimulatorProcess,
    tmp: Path,
    market: str,
    duration: float,
    *options: str,
    env: dict[str, str] | None = None,
    exit_code: int = 0,
) -> tuple[dict[str, Any], subprocess.CompletedProcess[str]]:
    args = [
        *HUNDI, "collect", "binance", "--market", market, "--symbols", "BTCUSDT",
        "--channels", "trades,orders,fills", "--endpoint", sim.ws_url,
        "--rest-endpoint", sim.rest_url, "--store", str(tmp / "data"), "--flush-interval", "0.2",
        "--duration", str(duration), "--summary-json", str(tmp / "summary.json"),
        "--raw", str(tmp / "raw"),
    ]  # fmt: skip
    for option in options:
        args += ["--option", option]
    done = subprocess.run(
        args, capture_output=True, text=True, timeout=duration + 60, cwd=tmp, env=env
    )
    assert done.returncode == exit_code, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    summary: dict[str, Any] = json.loads((tmp / "summary.json").read_text())
    return summary, done


def assert_no_secret_anywhere(
    tmp: Path, *texts: str, exchange: str = "binance", secrets: tuple[str, ...] = (KEY, SECRET)
) -> None:
    """Scan every output: process streams, every file (gzip opened), every stored record."""
    blobs = list(texts)
    for path in tmp.rglob("*"):
        if not path.is_file() or path.suffix == ".parquet" or path.name.startswith(".secret."):
            continue  # parquet is scanned through hundi.read below; the secret file is the input
        data = path.read_bytes()
        if path.suffix == ".gz":
            data = gzip.decompress(data)
        blobs.append(data.decode("utf-8", "replace"))
    for channel in Channel:
        stored = read_channel(tmp / "data", exchange, channel.value)
        blobs.append(stored.to_csv())
    scanned = "\n".join(blobs)
    assert len(scanned) > 1000  # there was something to scan
    for secret in secrets:
        assert secret not in scanned


def keys(frame: pd.DataFrame) -> list[tuple[str, str, float]]:
    return [
        (str(o), x, round(f, 8))
        for o, x, f in zip(frame["order_id"], frame["execution"], frame["filled"], strict=True)
    ]


def check_losses_explained(
    orders: pd.DataFrame, events: pd.DataFrame, delivered: list[dict[str, Any]]
) -> None:
    """Every delivered update that was not stored was lost with its socket, and said so.

    A dropped socket loses a suffix of what was sent on it (TCP keeps order), so an update lost
    before a later one of the same connection was stored is a silent loss. The gap explaining a
    loss is the one of that break: recorded after the update was sent and before anything sent
    on a later connection was stored, not whichever gap happens to come within some window.
    """
    stored = set(keys(orders))
    stored_ms = dict(zip(keys(orders), orders["recv_ts"].astype("int64") // 1_000_000, strict=True))
    gaps_ms = [
        ts.value // 1_000_000
        for ts in events[(events["channel"] == "orders") & (events["kind"] == "gap")].index
    ]
    newest_ms = orders.index.max().value // 1_000_000
    per_conn: dict[int, list[tuple[tuple[str, str, float], int]]] = {}
    first_conn: dict[tuple[str, str, float], int] = {}
    for d in delivered:
        key = (str(d["order_id"]), d["execution"], round(d["filled"], 8))
        per_conn.setdefault(d["conn"], []).append((key, d["time_ms"]))
        first_conn[key] = min(first_conn.get(key, d["conn"]), d["conn"])
    for conn, sent in per_conn.items():
        later = [stored_ms[k] for k, c in first_conn.items() if c > conn and k in stored_ms]
        next_data_ms = min(later, default=2**62)
        last_stored = max((i for i, (k, _) in enumerate(sent) if k in stored), default=-1)
        for i, (key, at_ms) in enumerate(sent):
            if key in stored or at_ms > newest_ms:
                continue  # stored, or still in flight when the collector stopped
            assert i > last_stored, f"{key} lost silently: a later update of conn {conn} stored"
            explained = any(at_ms <= gap <= next_data_ms for gap in gaps_ms)
            assert explained, f"{key} lost silently: no gap before conn {conn}'s successors"


def check_orders_match(store: Path, delivered: list[dict[str, Any]]) -> pd.DataFrame:
    """Stored = delivered, except events a stored gap explains (lost with a dropped socket)."""
    orders = hundi.read(store, exchange="binance", channel="orders")
    fills = hundi.read(store, exchange="binance", channel="fills")
    events = hundi.read(store, exchange="binance", channel="events")
    stored = keys(orders)
    assert len(stored) == len(set(stored)), "an order update was stored twice"
    sent = {
        (str(d["order_id"]), d["execution"], round(d["filled"], 8)): d["time_ms"] for d in delivered
    }
    assert set(stored) <= set(sent), "stored order updates the simulator never sent"
    check_losses_explained(orders, events, delivered)
    trades = {d["trade_id"] for d in delivered if d["execution"] == "TRADE"}
    assert set(fills["trade_id"]) <= trades
    assert len(fills) == len(set(fills["trade_id"]))
    stored_trades = set(orders[orders["execution"] == "TRADE"]["trade_id"])
    assert set(fills["trade_id"]) == stored_trades
    return orders


def test_spot_orders_and_fills_survive_terminations_and_drops(
    credentials: None, tmp_path: Path
) -> None:
    sim_args = [
        "--market", "spot", "--rate", "100", "--private", "--order-interval", "0.02",
        "--private-fault", "terminate:2", "--private-fault", "drop:3.5",
    ]  # fmt: skip
    with SimulatorProcess(sim_args) as sim:
        summary, done = collect(sim, tmp_path, "spot", 7, "auth_retry_initial_ms=200")
        found = truth(sim)
    assert found["auth_ok"] >= 3  # subscribed again after every termination and drop
    assert found["faults"]["terminate"] >= 2 and found["faults"]["drop"] >= 1
    assert not found["auth_failed"]
    orders = check_orders_match(tmp_path / "data", found["delivered"])
    assert set(orders["status"]) >= {"new", "partially_filled", "canceled", "rejected", "expired"}
    assert summary["records"]["orders"] == len(orders) > 50
    assert summary["records"]["trades"] > 0  # market data alongside
    events = hundi.read(tmp_path / "data", exchange="binance", channel="events")
    assert "eventStreamTerminated" in " ".join(events["detail"])
    assert_no_secret_anywhere(tmp_path, done.stdout, done.stderr)

    # the raw capture replays into the same orders and fills, without any credentials
    env = {k: v for k, v in os.environ.items() if not k.startswith("BINANCE_API_")}
    raw_files = sorted(str(p) for p in (tmp_path / "raw").glob("*.hcap.gz"))
    replayed = subprocess.run(
        [*HUNDI, "replay", *raw_files, "--store", str(tmp_path / "replayed")],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env,
    )  # fmt: skip
    assert replayed.returncode == 0, replayed.stderr
    for channel in ("orders", "fills"):
        live = hundi.read(tmp_path / "data", exchange="binance", channel=channel)
        again = hundi.read(tmp_path / "replayed", exchange="binance", channel=channel)
        assert len(again) == len(live) > 0


def test_usdm_listen_key_kept_alive_and_recreated_after_expiry(
    credentials: None, tmp_path: Path
) -> None:
    sim_args = [
        "--market", "usdm", "--rate", "100", "--private", "--order-interval", "0.02",
        "--private-fault", "listen-key-expire:2.5",
    ]  # fmt: skip
    with SimulatorProcess(sim_args) as sim:
        summary, done = collect(sim, tmp_path, "usdm", 7, "listen_key_keepalive_s=1")
        found = truth(sim)
    assert found["keepalives"] >= 2
    assert found["listen_keys_created"] >= 2 and found["faults"]["listen-key-expire"] >= 1
    orders = check_orders_match(tmp_path / "data", found["delivered"])
    assert set(orders["symbol"]) == {"BTC-USDT-PERP", "ETH-USDT-PERP"}  # account-wide
    events = hundi.read(tmp_path / "data", exchange="binance", channel="events")
    assert "listenKeyExpired" in " ".join(events["detail"])
    assert summary["records"]["fills"] > 0 and summary["records"]["trades"] > 0
    assert_no_secret_anywhere(tmp_path, done.stdout, done.stderr)


def test_wrong_secret_is_one_clear_error_per_capped_attempt_and_market_data_flows(
    credentials: None, tmp_path: Path
) -> None:
    """Credentials from ``.secret.binance.env``; the secret is wrong."""
    wrong = "WRONG-secret-0000"
    (tmp_path / ".secret.binance.env").write_text(
        f"BINANCE_API_KEY={KEY}\nBINANCE_API_SECRET={wrong}\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("BINANCE_API_")}
    with SimulatorProcess(["--market", "spot", "--rate", "100", "--private"]) as sim:
        summary, done = collect(
            sim, tmp_path, "spot", 5, "auth_retry_initial_ms=300", "auth_max_attempts=3",
            env=env, exit_code=1,
        )  # fmt: skip
        found = truth(sim)
    assert found["auth_failed"] == {"-1022": 3} and found["auth_ok"] == 0  # capped: 3, no storm
    # found by review: this run said "outcome: ok (exit 0)" without its orders and fills
    assert summary["outcome"]["result"] == "incomplete"
    (reason,) = [r for r in summary["outcome"]["reasons"] if "refused the API" in r]
    assert "authenticated channels were not collected" in reason and "-1022" in reason
    assert "outcome: INCOMPLETE (exit 1)" in done.stdout
    events = hundi.read(tmp_path / "data", exchange="binance", channel="events")
    refused = events[events["kind"] == "auth_failed"]
    assert len(refused) == 3 and "-1022" in refused["detail"].iloc[0]
    assert "giving up" in refused["detail"].iloc[-1]
    assert len(hundi.read(tmp_path / "data", exchange="binance", channel="trades")) > 0
    log = (tmp_path / "logs" / "hundi.log").read_text()
    assert log.count("refused the API credentials") == 3
    assert_no_secret_anywhere(tmp_path, done.stdout, done.stderr)
    everything = done.stdout + done.stderr + log
    assert wrong not in everything
    # the capture replays to the same refusals and outcome (found by review: the replay read
    # the refusals as unknown server errors, stored none and said ok)
    raw_files = sorted(str(p) for p in (tmp_path / "raw").glob("*.hcap.gz"))
    replayed = subprocess.run(
        [*HUNDI, "replay", *raw_files, "--store", str(tmp_path / "replayed")],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env,
    )  # fmt: skip
    assert replayed.returncode == 1, replayed.stdout + replayed.stderr
    assert "outcome: INCOMPLETE (exit 1)" in replayed.stdout and "-1022" in replayed.stdout
    again = hundi.read(tmp_path / "replayed", exchange="binance", channel="events")
    replayed_refusals = again[again["kind"] == "auth_failed"]["detail"].tolist()
    assert len(replayed_refusals) == 3 and all("-1022" in d for d in replayed_refusals)
    assert "giving up" in replayed_refusals[-1]  # (no credentials: "from nowhere")


def test_bitfinex_orders_and_fills_survive_drops_and_replay_open_orders(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    bfx_key, bfx_secret = "bfxE2E-KEY-5c2d", "bfxE2E-SECRET-9e0f"
    monkeypatch.setenv("BITFINEX_API_KEY", bfx_key)
    monkeypatch.setenv("BITFINEX_API_SECRET", bfx_secret)
    sim_args = ["--order-interval", "0.02", "--private-fault", "drop:2.5"]
    with SimulatorProcess(sim_args, venue="bitfinex") as sim:
        args = [
            *HUNDI, "collect", "bitfinex", "--symbols", "tBTCUSD", "--channels", "orders,fills",
            "--endpoint", sim.ws_url, "--store", str(tmp_path / "data"),
            "--flush-interval", "0.2", "--duration", "7",
            "--summary-json", str(tmp_path / "summary.json"), "--raw", str(tmp_path / "raw"),
        ]  # fmt: skip
        done = subprocess.run(args, capture_output=True, text=True, timeout=70, cwd=tmp_path)
        found = truth(sim)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert found["auth_ok"] >= 2 and found["faults"]["drop"] >= 2 and not found["auth_failed"]
    store = tmp_path / "data"
    orders = hundi.read(store, exchange="bitfinex", channel="orders")
    fills = hundi.read(store, exchange="bitfinex", channel="fills")
    events = hundi.read(store, exchange="bitfinex", channel="events")

    def ident(order_id: str, client_id: str, execution: str, filled: float) -> tuple[str, ...]:
        return (order_id or f"cid:{client_id}", execution, f"{filled:.8f}")

    stored = [
        ident(o, c, x, f)
        for o, c, x, f in zip(
            orders["order_id"], orders["client_order_id"], orders["execution"], orders["filled"],
            strict=True,
        )
    ]  # fmt: skip
    assert len(stored) == len(set(stored)), "an order update was stored twice"
    updates = [d for d in found["delivered"] if d["execution"] != "trade"]
    sent = {ident(d["order_id"], d["client_id"], d["execution"], d["filled"]): d for d in updates}
    assert set(stored) <= set(sent)
    assert {"on", "oc", "n"} <= set(orders["execution"])
    newest_ms = orders.index.max().value // 1_000_000
    gaps_ms = [t.value // 1_000_000 for t in events[events["kind"] == "gap"].index]
    seen = {(k[0], k[2]) for k in stored}
    # Open orders re-sent after re-auth ("os") are stored where they changed while away: the
    # loop below holds every such one to be stored (or inside a stored gap). Whether any
    # changed is the drop's timing under load (an "os" row always asserted here failed a CI
    # run on a busy box with nothing changed).
    for key, d in sent.items():
        if key in set(stored) or d["time_ms"] > newest_ms:
            continue
        if d["execution"] == "os" and (key[0], key[2]) in seen:
            continue  # an unchanged open order re-sent after re-auth: nothing new to store
        assert any(0 <= gap - d["time_ms"] <= 3000 for gap in gaps_ms), f"{key} lost silently"
    trades = {d["trade_id"] for d in found["delivered"] if d["execution"] == "trade"}
    assert len(fills) > 0 and set(fills["trade_id"]) <= trades
    assert len(fills) == len(set(fills["trade_id"]))
    assert (fills["fee"] > 0).all()  # Bitfinex's negative fee is stored as a positive cost
    assert_no_secret_anywhere(
        tmp_path, done.stdout, done.stderr, exchange="bitfinex", secrets=(bfx_key, bfx_secret)
    )


def test_spot_with_an_ed25519_key_logs_on_again_after_drops(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
    )

    pem = (
        Ed25519PrivateKey.generate()
        .private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        .decode()
    )
    key_file = tmp_path_factory.mktemp("keys") / "binance-ed25519.pem"
    key_file.write_text(pem)
    monkeypatch.setenv("BINANCE_API_KEY", KEY)
    monkeypatch.setenv("BINANCE_ED25519_KEY", str(key_file))
    monkeypatch.delenv("BINANCE_API_SECRET", raising=False)
    sim_args = ["--market", "spot", "--rate", "100", "--private", "--order-interval", "0.02",
                "--private-fault", "drop:2"]  # fmt: skip
    with SimulatorProcess(sim_args) as sim:
        _summary, done = collect(sim, tmp_path, "spot", 5)
        found = truth(sim)
    assert found["auth_ok"] >= 2 and not found["auth_failed"] and found["faults"]["drop"] >= 1
    check_orders_match(tmp_path / "data", found["delivered"])
    body = [line for line in pem.splitlines() if not line.startswith("-")]
    assert_no_secret_anywhere(tmp_path, done.stdout, done.stderr, secrets=(KEY, *body))
