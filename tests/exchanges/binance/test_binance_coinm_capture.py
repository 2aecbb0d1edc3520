"""A COIN-M capture in the recordings' format (``BINANCE_DELIVERY.*``, as cryptofeed names it),
written here from hand-made frames of the real delivery ``LINKUSD_211231``: ``hundi replay``
infers the exchange from the file names and the market from the dstream/dapi URLs, and replays
it with every frame accounted, the book synced by the ``pu`` rule and never crossed.

Before COIN-M existed this capture failed with "cannot split Binance symbol 'LINKUSD_211231'".
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from click.testing import CliRunner

from hundi.accounting import Accounting
from hundi.capture.cli import replay as replay_command
from hundi.capture.infer import infer_config, infer_exchange
from hundi.capture.reader import read_capture
from hundi.capture.replay import Batch, replay_events
from hundi.exchanges import exchanges
from hundi.records import CONTRACTS, SAMPLED, SELL, Channel

T0 = 1_638_000_000.0  # 2021-11-27, before the contract's delivery
WS = (
    "wss://dstream.binance.com/stream?streams=linkusd_211231@aggTrade/"
    "linkusd_211231@depth@100ms/linkusd_211231@bookTicker/linkusd_211231@markPrice/"
    "linkusd_211231@forceOrder"
)
EXCHANGE_INFO = {
    "timezone": "UTC",
    "serverTime": 1637999999000,
    "symbols": [
        {
            "symbol": "LINKUSD_211231", "pair": "LINKUSD", "contractType": "CURRENT_QUARTER",
            "deliveryDate": 1640937600000, "onboardDate": 1632470400000,
            "contractStatus": "TRADING", "contractSize": 10, "marginAsset": "LINK",
            "baseAsset": "LINK", "quoteAsset": "USD",
            "filters": [
                {"filterType": "PRICE_FILTER", "tickSize": "0.001", "minPrice": "0.001"},
                {"filterType": "LOT_SIZE", "stepSize": "1", "minQty": "1"},
            ],
        },
        {
            "symbol": "LINKUSD_PERP", "pair": "LINKUSD", "contractType": "PERPETUAL",
            "deliveryDate": 4133404800000, "contractStatus": "TRADING", "contractSize": 10,
            "marginAsset": "LINK", "baseAsset": "LINK", "quoteAsset": "USD", "filters": [],
        },
    ],
}  # fmt: skip


def _ms(offset_s: float) -> int:
    return int((T0 + offset_s) * 1000)


def frames() -> list[tuple[float, dict[str, object]]]:
    """(receive offset, frame): diffs before and after the snapshot (lastUpdateId 1000)."""
    s = "LINKUSD_211231"

    def depth(at: float, first: int, final: int, prev: int, b: list, a: list) -> dict:
        data = {"e": "depthUpdate", "E": _ms(at), "T": _ms(at), "s": s, "ps": "LINKUSD",
                "U": first, "u": final, "pu": prev, "b": b, "a": a}  # fmt: skip
        return {"stream": "linkusd_211231@depth@100ms", "data": data}

    out: list[tuple[float, dict[str, object]]] = [
        (0.10, depth(0.1, 990, 995, 989, [["25.100", "30"]], [])),  # before the snapshot: dropped
        (0.20, depth(0.2, 996, 1003, 995, [["25.110", "12"]], [["25.200", "0"]])),  # straddles
        (0.25, {"stream": "linkusd_211231@aggTrade", "data": {
            "e": "aggTrade", "E": _ms(0.25), "a": 7001, "s": s, "p": "25.150", "q": "4",
            "f": 9001, "l": 9002, "T": _ms(0.25), "m": True}}),
        (1.30, depth(1.3, 1004, 1010, 1003, [["25.120", "5"]], [["25.190", "8"]])),
        (1.40, {"stream": "linkusd_211231@bookTicker", "data": {
            "e": "bookTicker", "u": 1010, "s": s, "ps": "LINKUSD", "b": "25.120", "B": "5",
            "a": "25.190", "A": "8", "T": _ms(1.4), "E": _ms(1.4)}}),
        (1.50, {"stream": "linkusd_211231@aggTrade", "data": {
            "e": "aggTrade", "E": _ms(1.5), "a": 7002, "s": s, "p": "25.190", "q": "2",
            "f": 9003, "l": 9003, "T": _ms(1.5), "m": False}}),
        (2.00, {"stream": "linkusd_211231@markPrice", "data": {
            "e": "markPriceUpdate", "E": _ms(2.0), "s": s, "p": "25.15500000",
            "P": "25.16000000", "i": "25.14000000", "r": "", "T": 0}}),
        (2.50, {"stream": "linkusd_211231@forceOrder", "data": {"e": "forceOrder", "E": _ms(2.5),
            "o": {"s": s, "ps": "LINKUSD", "S": "SELL", "o": "LIMIT", "f": "IOC", "q": "3",
                  "p": "25.050", "ap": "25.100", "X": "FILLED", "l": "3", "z": "3",
                  "T": _ms(2.49)}}}),
        (2.60, depth(2.6, 1011, 1012, 1010, [["25.110", "0"]], [["25.300", "1"]])),
    ]  # fmt: skip
    return out


def write_capture(folder: Path) -> list[Path]:
    """The ``NAME.0`` / ``NAME.http.0.0`` / ``NAME.ws.1.0`` files of the recordings' format."""
    info_url = "https://dapi.binance.com/dapi/v1/exchangeInfo"
    config = {"trades": ["LINK-USD-20211231"], "l2_book": ["LINK-USD-20211231"]}
    setup = folder / "BINANCE_DELIVERY.0"
    setup.write_text(
        f"{info_url} -> {T0 - 0.5:.6f}: {json.dumps(EXCHANGE_INFO)}\n"
        f"configuration: {json.dumps(config)}\n",
        encoding="utf-8",
    )
    snapshot = {"lastUpdateId": 1000, "E": _ms(0.9), "T": _ms(0.9), "symbol": "LINKUSD_211231",
                "pair": "LINKUSD", "bids": [["25.100", "30"], ["25.050", "10"]],
                "asks": [["25.200", "7"], ["25.250", "9"]]}  # fmt: skip
    depth_url = "https://dapi.binance.com/dapi/v1/depth?symbol=LINKUSD_211231&limit=1000"
    oi_url = "https://dapi.binance.com/dapi/v1/openInterest?symbol=LINKUSD_211231"
    oi = {"symbol": "LINKUSD_211231", "pair": "LINKUSD", "openInterest": "52000",
          "contractType": "CURRENT_QUARTER", "time": _ms(0.3)}  # fmt: skip
    http = folder / "BINANCE_DELIVERY.http.0.0"
    http.write_text(
        f"{oi_url} -> {T0 + 0.3:.6f}: {json.dumps(oi)}\n"
        f"{depth_url} -> {T0 + 1.0:.6f}: {json.dumps(snapshot)}\n",
        encoding="utf-8",
    )
    lines = [f"{WS} <-> {T0:.6f}"]
    compact = (",", ":")
    lines += [f"{T0 + at:.6f}: {json.dumps(frame, separators=compact)}" for at, frame in frames()]
    ws = folder / "BINANCE_DELIVERY.ws.1.0"
    ws.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return [setup, http, ws]


def test_the_capture_names_binance_coinm_and_its_streams(tmp_path: Path) -> None:
    files = write_capture(tmp_path)
    assert infer_exchange(files) == "binance"
    config = infer_config(files, "binance", None)
    assert config.market == "coinm"  # from the dstream / dapi URLs
    assert config.symbols == ("LINKUSD_211231",)
    assert set(config.channels) == {
        Channel.TRADES, Channel.BOOK, Channel.BBO, Channel.DERIVATIVE_TICKER,
        Channel.LIQUIDATIONS, Channel.EVENTS,
    }  # fmt: skip
    # one recorded openInterest answer: polled at the default minute
    assert config.options == {"mark_price_stream": "markPrice", "open_interest_interval_s": "60"}


def test_open_interest_polls_as_often_as_the_recording_did(tmp_path: Path) -> None:
    files = write_capture(tmp_path)
    url = "https://dapi.binance.com/dapi/v1/openInterest?symbol=LINKUSD_211231"
    body = {"symbol": "LINKUSD_211231", "openInterest": "1", "time": _ms(5)}
    extra = tmp_path / "BINANCE_DELIVERY.http.0.1"
    extra.write_text(
        f"{url} -> {T0 + 5.5:.6f}: {json.dumps(body)}\n{url} -> {T0 + 10.7:.6f}: "
        f"{json.dumps(body)}\n",
        encoding="utf-8",
    )
    options = infer_config([*files, extra], "binance", None).options
    assert options["open_interest_interval_s"] == "5"  # 5.2 s apart at the shortest
    (tmp_path / "BINANCE_DELIVERY.http.0.0").write_text("", encoding="utf-8")
    extra.unlink()
    options = infer_config(files, "binance", None).options
    assert options["open_interest_interval_s"] == "0"  # nothing recorded: no poll


def test_the_capture_replays_accounted_synced_and_uncrossed(tmp_path: Path) -> None:
    files = write_capture(tmp_path)
    config = infer_config(files, "binance", None)
    config.authenticate = False
    protocol = exchanges()["binance"].venue(config)
    crossed: list[str] = []
    receive = protocol.receive

    def checked(conn, data, recv_ns, out):  # type: ignore[no-untyped-def]
        try:
            return receive(conn, data, recv_ns, out)
        finally:
            for book in protocol.books():
                if book.synced and not book.best_bid < book.best_ask:
                    crossed.append(book.symbol)

    protocol.receive = checked  # type: ignore[method-assign]
    accounting = Accounting()
    batches: list[Batch] = []
    replay_events(read_capture(files), protocol, batches.append, accounting)
    records = {c: [r for b in batches for r in b.get(c, ())] for c in Channel}

    assert accounting.received == len(frames())
    assert accounting.received == accounting.processed + accounting.filtered
    assert accounting.rejected_total == 0
    assert crossed == []
    (book,) = protocol.books()
    assert book.synced and book.symbol == "LINK-USD-20211231"
    assert (book.best_bid, book.best_ask) == (25.12, 25.19)
    assert not math.isnan(book.best_bid)
    assert [t.trade_id for t in records[Channel.TRADES]] == [7001, 7002]
    assert {t.symbol for t in records[Channel.TRADES]} == {"LINK-USD-20211231"}
    interest, ticker = records[Channel.DERIVATIVE_TICKER]
    assert (interest.source, interest.open_interest) == ("openInterest", 52000.0)
    assert math.isnan(interest.mark_price)  # not known yet: NaN, not 0
    assert (ticker.source, ticker.open_interest) == ("markPrice", 52000.0)  # kept, merged
    assert ticker.open_interest_value == 52000 * 10  # contracts of 10 USD (exchangeInfo)
    assert (ticker.mark_price, ticker.index_price, ticker.next_funding_time) == (25.155, 25.14, 0)
    assert math.isnan(ticker.funding_rate)  # a delivery: no funding ("r": "")
    assert ticker.size_unit == CONTRACTS
    (liquidation,) = records[Channel.LIQUIDATIONS]
    assert (liquidation.side, liquidation.price, liquidation.size) == (SELL, 25.05, 3.0)
    assert (liquidation.size_unit, liquidation.completeness) == (CONTRACTS, SAMPLED)
    kinds = [e.kind for e in records[Channel.EVENTS]]
    assert "gap" not in kinds and "synced" in kinds


def test_hundi_replay_command_replays_it(tmp_path: Path) -> None:
    files = write_capture(tmp_path)
    summary = tmp_path / "summary.json"
    result = CliRunner().invoke(
        replay_command,
        [*map(str, files), "--dry-run", "--summary-json", str(summary),
         "--quarantine", str(tmp_path / "q.jsonl")],
    )  # fmt: skip
    assert "cannot split" not in result.output
    assert result.exit_code == 0, result.output
    report = json.loads(summary.read_text())
    assert [(b["symbol"], b["synced"]) for b in report["books"]] == [("LINK-USD-20211231", True)]
    assert not (tmp_path / "q.jsonl").exists()  # nothing rejected


def test_configuration_line_alone_names_coinm_contracts(tmp_path: Path) -> None:
    """Without stream URLs, the ``configuration:`` line and a dapi REST line still say it."""
    setup = tmp_path / "BINANCE_DELIVERY.0"
    config = {"trades": ["BTC-USD-PERP", "LINK-USD-20211231"], "l2_book": ["BTC-USD-PERP"]}
    setup.write_text(
        f"https://dapi.binance.com/dapi/v1/exchangeInfo -> {T0:.6f}: {json.dumps(EXCHANGE_INFO)}\n"
        f"configuration: {json.dumps(config)}\n",
        encoding="utf-8",
    )
    inferred = infer_config([setup], "binance", None)
    assert inferred.market == "coinm"
    assert inferred.symbols == ("BTCUSD_PERP", "LINKUSD_211231")


def test_another_market_than_the_urls_say_is_a_one_line_error(tmp_path: Path) -> None:
    files = write_capture(tmp_path)
    try:
        infer_config(files, "binance", "usdm")
    except ValueError as e:
        assert "Binance coinm" in str(e) and "--market coinm" in str(e)
        assert "\n" not in str(e)
    else:
        raise AssertionError("a COIN-M capture replayed as USD-M")


RECORDINGS = Path(__file__).resolve().parents[4] / "shared" / "recordings"


def test_a_capture_mixing_markets_is_a_one_line_error_not_a_guess(tmp_path: Path) -> None:
    """A COIN-M recording beside USD-M files (or spot beside USD-M) is two markets: replayed as
    one, USD-M ``BTCUSDT`` streams would be named by COIN-M rules, spot ``BLZETH`` became
    ``BLZ-ETH-PERP``. One replay is one market: a clear error, exit 2, no traceback."""
    files = write_capture(tmp_path)
    usdm = tmp_path / "BINANCE_FUTURES.ws.1.0"
    usdm.write_text(f"wss://fstream.binance.com/stream?streams=btcusdt@aggTrade <-> {T0:.6f}\n")
    try:
        infer_config([*files, usdm], "binance", None)
    except ValueError as e:
        message = str(e)
        assert "mixes Binance markets" in message and "\n" not in message
        assert "coinm (" in message and "usdm (wss://fstream.binance.com/stream)" in message
    else:
        raise AssertionError("a COIN-M + USD-M capture replayed as one market")
    if not (RECORDINGS / "BINANCE.0").exists():
        return
    spot_and_usdm = sorted(RECORDINGS.glob("BINANCE.*")) + sorted(
        RECORDINGS.glob("BINANCE_FUTURES.*")
    )
    result = CliRunner().invoke(
        replay_command, [*map(str, spot_and_usdm), "--dry-run", "--quarantine",
                         str(tmp_path / "q.jsonl")],
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "mixes Binance markets: spot (" in result.output
    assert "Traceback" not in result.output and "-PERP" not in result.output


def test_configuration_line_of_a_delivery_recording_without_rest_lines_is_coinm(
    tmp_path: Path,
) -> None:
    """No URL at all: the ``BINANCE_DELIVERY`` name still says COIN-M (it was read as USD-M,
    ``BTCUSD`` perpetual, a symbol COIN-M does not have)."""
    setup = tmp_path / "BINANCE_DELIVERY.0"
    config = {"trades": ["BTC-USD-PERP", "LINK-USD-20211231"]}
    setup.write_text(f"configuration: {json.dumps(config)}\n", encoding="utf-8")
    inferred = infer_config([setup], "binance", None)
    assert inferred.market == "coinm"
    assert inferred.symbols == ("BTCUSD_PERP", "LINKUSD_211231")
