"""``hundi replay``: raw captures → stored records, identical to live collection."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from hundi.accounting import Accounting
from hundi.capture.infer import InferenceError, infer_config, infer_exchange
from hundi.capture.quarantine import Quarantine
from hundi.capture.reader import CaptureFormatError, expand, is_ours, read_capture
from hundi.capture.recordings import RecordingFormatError
from hundi.capture.replay import Batch, replay_events
from hundi.exchanges import venue_factory
from hundi.stores.base import Store, StoreError, open_store

FLUSH_EVERY_RECORDS = 200_000


class _StoreSink:
    """Writes replay batches to every store, flushing now and then to bound memory."""

    def __init__(self, stores: Sequence[Store]) -> None:
        self.stores = stores
        self.unflushed = 0

    def __call__(self, batch: Batch) -> None:
        for store in self.stores:
            store.write(batch)
        self.unflushed += sum(len(records) for records in batch.values())
        if self.unflushed >= FLUSH_EVERY_RECORDS:
            self.flush()

    def flush(self) -> None:
        for store in self.stores:
            store.flush()
        self.unflushed = 0


def run_replay(
    files: Sequence[Path],
    store_urls: Sequence[str],
    *,
    exchange: str | None = None,
    market: str | None = None,
    quarantine_path: Path | None = None,
) -> dict[str, Any]:
    """Replay ``files`` into the stores; returns the summary (same keys as the collector's).

    ``exchange`` and ``market`` default to what the capture says (:mod:`hundi.capture.infer`).
    """
    started = time.monotonic()
    paths = expand(files)
    if exchange is None:
        exchange = infer_exchange(paths)
    config = infer_config(paths, exchange, market)
    config.authenticate = False  # captured private frames are parsed, never re-authenticated
    protocol = venue_factory(exchange)(config)
    stores = [open_store(url) for url in store_urls]
    quarantine = Quarantine(quarantine_path) if quarantine_path is not None else None
    accounting = Accounting()
    sink = _StoreSink(stores)
    try:
        stats = replay_events(
            read_capture(paths),
            protocol,
            sink,
            accounting,
            quarantine,
            only_known_connections=all(is_ours(p) for p in paths),
        )
        sink.flush()
    finally:
        for store in stores:
            store.close()
        if quarantine is not None:
            quarantine.close()
    books = protocol.books()
    return accounting.summary(
        exchange=exchange,
        market=config.market,
        symbols=list(config.symbols),
        channels=[c.value for c in config.channels],
        files=[str(p) for p in paths],
        stores=[s.describe() for s in stores],
        replay=stats.as_dict(),
        books={b.symbol: {"synced": b.synced, "last_update_id": b.last_update_id} for b in books},
        quarantined=quarantine.count if quarantine is not None else 0,
        duration_s=round(time.monotonic() - started, 3),
    )


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
def replay(
    files: tuple[Path, ...],
    stores: tuple[str, ...],
    summary_json: Path | None,
    exchange: str | None,
    market: str | None,
    quarantine_path: Path,
    dry_run: bool,
) -> None:
    """Turn raw captures (--raw files or recordings) into stored records, as live collection."""
    if not stores and not dry_run:
        click.echo("hundi replay: nothing would be stored: give --store URL or --dry-run", err=True)
        sys.exit(2)
    if stores and dry_run:
        click.echo("hundi replay: --dry-run stores nothing: drop --store or --dry-run", err=True)
        sys.exit(2)
    try:
        summary = run_replay(
            files, stores, exchange=exchange, market=market, quarantine_path=quarantine_path
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
        sys.exit(2)
    text = json.dumps(summary, indent=2)
    click.echo(text)
    if summary_json is not None:
        summary_json.write_text(text + "\n")
    if dry_run:
        parsed = sum(summary["records"].values())
        click.echo(f"hundi replay: dry run: {parsed} records parsed, nothing stored", err=True)
    problems = replay_problems(summary)
    if problems:
        click.echo(f"hundi replay: incomplete: {'; '.join(problems)}", err=True)
        sys.exit(EXIT_INCOMPLETE)


EXIT_INCOMPLETE = 1  # replayed and stored, but the capture did not fit the protocol's requests


def replay_problems(summary: dict[str, Any]) -> list[str]:
    """What makes a replay not a faithful copy of the live run: REST requests the protocol made
    that the capture cannot answer (its books stay unsynced), and captured responses nobody
    asked for (a capture of another market or of symbols the replay does not follow)."""
    rest = summary["replay"]["rest"]
    problems = []
    if rest["unanswered"]:
        unsynced = sorted(s for s, book in summary["books"].items() if not book["synced"])
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
