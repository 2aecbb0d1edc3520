"""``hundi replay``: raw captures → stored records, identical to live collection."""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from hundi.accounting import Accounting
from hundi.capture.events import venue_id
from hundi.capture.infer import InferenceError, infer_config, infer_exchange
from hundi.capture.quarantine import Quarantine
from hundi.capture.reader import CaptureFormatError, expand, is_ours, read_capture
from hundi.capture.recordings import RecordingFormatError
from hundi.capture.replay import Batch, Progress, replay_events
from hundi.exchanges import venue_factory
from hundi.exchanges.base import VenueConfig
from hundi.options import unwritable_file
from hundi.outcome import (
    EXIT_SETUP,
    SeriesTally,
    auth_refusal,
    judge,
    print_summary,
    series_report,
    spec_text,
)
from hundi.records import Channel, EventKind
from hundi.series.engine import SeriesEngine
from hundi.series.spec import EXAMPLE, BasisSpec, BookTopSpec, SeriesPlan, parse_series
from hundi.stores.base import Store, StoreError, open_store

FLUSH_EVERY_RECORDS = 200_000


class _StoreSink:
    """Writes replay batches (and the series computed from them) to every store, flushing now
    and then to bound memory."""

    def __init__(
        self, stores: Sequence[Store], accounting: Accounting, series: SeriesEngine | None
    ) -> None:
        self.stores = stores
        self.accounting = accounting
        self.series = series
        self.tally = SeriesTally()
        self.unflushed: Counter[str] = Counter()
        self.stored: Counter[str] = Counter()  # confirmed by a flush in every store
        self.invalid_symbols: dict[str, None] = {}
        self.auth_refused: dict[str, None] = {}  # as collect's summary (see auth_refusal)
        self.now_ns = 0

    def __call__(self, batch: Batch) -> None:
        # the capture's receive clock: every record of the batch was received by then
        self.now_ns = max(self.now_ns, *(records[-1].recv_ts for records in batch.values()))
        for event in batch.get(Channel.EVENTS, ()):
            if getattr(event, "kind", "") == EventKind.INVALID_SYMBOL:
                self.invalid_symbols[event.native_symbol] = None
            elif (refused := auth_refusal(event)) is not None:
                self.auth_refused[refused] = None
        if self.series is not None:
            derived = self.series.process(batch, self.now_ns)
            if derived:
                self._derived(derived)
                batch = {**batch, **derived}
        self._write(batch)

    def finish(self) -> None:
        """The series' last tick at the capture's last time, then the final flush."""
        if self.series is not None and self.now_ns:
            derived = self.series.process({}, self.now_ns)
            if derived:
                self._derived(derived)
                self._write(derived)
        self.flush()

    def _derived(self, derived: Batch) -> None:
        self.tally.add(derived)
        for channel, records in derived.items():
            self.accounting.records[channel.value] += len(records)

    def _write(self, batch: Batch) -> None:
        for store in self.stores:
            store.write(batch)
        for channel, records in batch.items():
            self.unflushed[channel.value] += len(records)
        if sum(self.unflushed.values()) >= FLUSH_EVERY_RECORDS:
            self.flush()

    def flush(self) -> None:
        for store in self.stores:
            store.flush()
        self.stored.update(self.unflushed)
        self.unflushed = Counter()


def run_replay(
    files: Sequence[Path],
    store_urls: Sequence[str],
    *,
    exchange: str | None = None,
    market: str | None = None,
    quarantine_path: Path | None = None,
    series: SeriesPlan | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Replay ``files`` into the stores; returns the summary, in the shape of the collector's
    (printed by the same :func:`hundi.outcome.print_summary`, judged by the same rules).

    ``exchange`` and ``market`` default to what the capture says (:mod:`hundi.capture.infer`);
    ``series`` are computed from the replayed records on the capture's clock, as live.
    """
    started = time.monotonic()
    paths = expand(files)
    if exchange is None:
        exchange = infer_exchange(paths)
    config = infer_config(paths, exchange, market)
    config.authenticate = False  # captured private frames are parsed, never re-authenticated
    protocol = venue_factory(exchange)(config)
    engine = _series_engine(series, exchange, config) if series else None
    stores = [open_store(url) for url in store_urls]
    quarantine = Quarantine(quarantine_path) if quarantine_path is not None else None
    accounting = Accounting()
    sink = _StoreSink(stores, accounting, engine)
    try:
        stats = replay_events(
            read_capture(paths),
            protocol,
            sink,
            accounting,
            quarantine,
            only_known_connections=all(is_ours(p) for p in paths),
            progress=progress,
            venue=venue_id(exchange, config.market),
        )
        sink.finish()
    finally:
        for store in stores:
            store.close()
        if quarantine is not None:
            quarantine.close()
    duration = max(time.monotonic() - started, 1e-9)
    summary = accounting.summary(
        exchange=exchange,
        market=config.market,
        symbols=list(config.symbols),
        channels=[c.value for c in config.channels],
        files=[str(p) for p in paths],
        duration_s=round(duration, 3),
        msgs_per_s=round(accounting.received / duration, 1),
        invalid_symbols=list(sink.invalid_symbols),
        auth_refused=list(sink.auth_refused),
        stores=[_store_entry(store, sink.stored) for store in stores],
        series=_series_summary(engine, sink.tally, series, stats.span_s),
        replay=stats.as_dict(),
        books=[
            {
                "exchange": exchange,
                "symbol": book.symbol,
                "synced": book.synced,
                "bids": book.bids,
                "asks": book.asks,
                "last_update_id": book.last_update_id,
            }
            for book in protocol.books()
        ],
        quarantine={
            "path": str(quarantine.path) if quarantine is not None else "",
            "frames": quarantine.count if quarantine is not None else 0,
        },
    )
    summary["outcome"] = judge(summary, replay_problems(summary))
    return summary


def _store_entry(store: Store, stored: Counter[str]) -> dict[str, Any]:
    """A store's line of the summary, the collector's keys: a replay writes directly, so what
    every store flushed is stored and nothing is spooled."""
    return {
        "store": store.describe(),
        "records": dict(sorted(stored.items())),
        "errors": 0,
        "last_error": "",
        "lost": {},
        "spooled": {},
        "spooled_total": 0,
        "outages": 0,
        "gave_up": "",
        "loss_events": 0,
    }


def _series_engine(plan: SeriesPlan, exchange: str, config: VenueConfig) -> SeriesEngine:
    """The engine for ``plan`` over the captured symbols, checked as collect checks it: each
    series needs its input channel among the captured ones."""
    for spec in plan.specs:
        needed = (
            Channel.BBO
            if isinstance(spec, BasisSpec)
            else Channel.BOOK
            if isinstance(spec, BookTopSpec)
            else Channel.TRADES
        )
        if needed not in config.channels:
            raise ValueError(
                f"--series {spec_text(spec)}: needs {needed.value}, which the capture does not "
                f"hold (it has {', '.join(c.value for c in config.channels)})"
            )
    return SeriesEngine([(None, plan)])


def _series_summary(
    engine: SeriesEngine | None, tally: SeriesTally, plan: SeriesPlan | None, span_s: float
) -> dict[str, Any] | None:
    if engine is None or plan is None:
        return None
    return {
        "records": dict(sorted(engine.emitted.items())),
        "behind": False,  # computed in line, never skipped
        "dropped_batches": 0,
        "dropped_records": 0,
        "late_records": engine.late,
        "restarts": engine.resets,
        "errors": 0,
        "last_error": "",
        "specs": series_report([plan], tally, span_s),
    }


@contextlib.contextmanager
def _progress_bar() -> Iterator[Progress | None]:
    """A progress line on a terminal (replays of a day take a while); nothing in logs and
    pipes, where it would only be noise."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import Progress as Bar
    from rich.progress import SpinnerColumn, TextColumn, TimeElapsedColumn

    bar = Bar(
        SpinnerColumn(),
        TextColumn(
            "replaying: {task.completed:,.0f} captured events, capture at {task.fields[at]}"
        ),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    task = bar.add_task("replay", total=None, at="-")

    def update(events: int, ts_ns: int) -> None:
        at = datetime.fromtimestamp(ts_ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S")
        bar.update(task, completed=events, at=at)

    with bar:
        yield update


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--store", "stores", multiple=True, help="Store URL (repeatable), e.g. ./data")
@click.option(
    "--dry-run", is_flag=True, help="Parse and count without storing anything (instead of --store)."
)
@click.option("--summary-json", type=click.Path(path_type=Path), help="Write the summary here.")
@click.option(
    "--exchange",
    metavar="NAME",
    help="A registered exchange (`hundi.exchanges`). Default: from the capture's header or "
    "file names.",
)
@click.option(
    "--market", metavar="MARKET", help="The exchange's market. Default: from the capture."
)
@click.option(
    "--quarantine",
    "quarantine_path",
    type=click.Path(path_type=Path),
    default=Path("replay-quarantine.jsonl"),
    show_default=True,
    help="Rejected frames (JSON lines), created only if a frame is rejected.",
)
@click.option(
    "--series",
    "series_text",
    metavar="SPECS",
    help=f"Derived series to compute and store, as collect's, e.g. {EXAMPLE}.",
)
def replay(
    files: tuple[Path, ...],
    stores: tuple[str, ...],
    summary_json: Path | None,
    exchange: str | None,
    market: str | None,
    quarantine_path: Path,
    series_text: str | None,
    dry_run: bool,
) -> None:
    """Turn raw captures (--raw files or recordings) into stored records, as live collection.

    Prints the summary collect prints and exits with its codes (0 ok, 1 incomplete, 2 bad
    input, 3 nothing replayed); a progress line shows on a terminal.
    """
    if not stores and not dry_run:
        click.echo("hundi replay: nothing would be stored: give --store URL or --dry-run", err=True)
        sys.exit(2)
    if stores and dry_run:
        click.echo("hundi replay: --dry-run stores nothing: drop --store or --dry-run", err=True)
        sys.exit(2)
    problem = unwritable_file("--summary-json", summary_json) if summary_json else None
    if problem is not None:  # before anything is stored (it was a traceback at the end)
        click.echo(f"hundi replay: {problem}", err=True)
        sys.exit(2)
    try:
        series = parse_series(series_text, "--series") if series_text is not None else None
        with _progress_bar() as progress:
            summary = run_replay(
                files,
                stores,
                exchange=exchange,
                market=market,
                quarantine_path=quarantine_path,
                series=series,
                progress=progress,
            )
    except (
        CaptureFormatError,
        RecordingFormatError,
        InferenceError,
        StoreError,
        ValueError,
        OSError,
    ) as e:
        click.echo(f"hundi replay: {e}", err=True)
        sys.exit(EXIT_SETUP)
    print_summary(summary, click.echo)
    if summary_json is not None:
        summary_json.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    if dry_run:
        parsed = sum(summary["records"].values())
        click.echo(f"hundi replay: dry run: {parsed} records parsed, nothing stored", err=True)
    sys.exit(summary["outcome"]["exit_code"])


def replay_problems(summary: dict[str, Any]) -> list[str]:
    """What makes a replay not a faithful copy of the live run: REST requests the protocol made
    that the capture cannot answer (its books stay unsynced), and captured responses nobody
    asked for (a capture of another market or of symbols the replay does not follow)."""
    rest = summary["replay"]["rest"]
    problems = []
    if rest["unanswered"]:
        unsynced = sorted(book["symbol"] for book in summary["books"] if not book["synced"])
        problems.append(
            f"{rest['unanswered']} REST request(s) the capture holds no answer for"
            + (f" (books not synced: {', '.join(unsynced)})" if unsynced else "")
        )
    if rest["unused"]:
        problems.append(
            f"{rest['unused']} recorded REST response(s) nothing asked for (another market or "
            "symbols? see --market)"
        )
    return problems
