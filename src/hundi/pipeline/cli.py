"""``hundi collect``: record venues into stores (and optionally raw captures) until stopped."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import click

from hundi.capture.events import venue_id
from hundi.capture.quarantine import Quarantine
from hundi.capture.writer import CaptureError, RawCaptureWriter, venue_header
from hundi.config import (
    ConfigError,
    FeedConfig,
    Settings,
    load_config_file,
    load_settings,
    parse_channels,
)
from hundi.connection.client import default_client
from hundi.connection.manager import ConnectionSettings
from hundi.exchanges import venue_factory
from hundi.exchanges.base import VenueConfig, VenueProtocol
from hundi.logs import LogRuntime, setup_logging
from hundi.options import FiniteFloat, unwritable_file
from hundi.outcome import EXIT_SETUP, judge, print_summary
from hundi.pipeline.collector import Collector, CollectorSettings
from hundi.pipeline.health import (
    bind_listener,
    collector_health,
    collector_http_app,
    health_path,
    run_health_loop,
    start_http,
)
from hundi.pipeline.metrics import MetricsSetupError, listener_token
from hundi.pipeline.shard import resolve_shard, shard_feeds
from hundi.pipeline.spool import SpoolError
from hundi.pipeline.status import StatusReporter
from hundi.records import Channel
from hundi.series.engine import Scope, SeriesEngine
from hundi.series.spec import EXAMPLE, BasisSpec, BookTopSpec, SeriesPlan, SeriesSpecError
from hundi.series.spec import parse_series as _parse_series
from hundi.stores.base import Store, StoreError, open_store, scheme_of


def _fail(message: str) -> NoReturn:
    click.echo(f"Error: {message}", err=True)
    sys.exit(EXIT_SETUP)


def _symbols(text: str | None) -> tuple[str, ...]:
    if text is None:
        return ()
    symbols = tuple(s.strip().upper() for s in text.split(",") if s.strip())
    if not symbols:
        raise click.BadParameter("give at least one symbol, e.g. BTCUSDT,ETHUSDT")
    return symbols


@click.command()
@click.argument("exchange", required=False)
@click.option(
    "--market",
    default=None,
    help="the venue's market: spot, or a derivatives market its docs page names (usdm, coinm, "
    "swap, futures, linear, inverse...). [default: spot]",
)
@click.option("--symbols", help="Native symbols, comma separated, e.g. BTCUSDT,ETHUSDT.")
@click.option(
    "--channels",
    default="trades,bbo,book",
    show_default=True,
    help="Comma separated: trades,bbo,ticker,book,candles.",
)
@click.option("--endpoint", help="WebSocket base URL override (e.g. a simulator's ws_url).")
@click.option("--rest-endpoint", help="REST base URL override (e.g. a simulator's rest_url).")
@click.option(
    "--store", "stores", multiple=True, help="Store URL; repeat to fan out. [default: ./data]"
)
@click.option("--raw", "raw_dir", type=click.Path(file_okay=False), help="Raw capture directory.")
@click.option("--quarantine", "quarantine_path", type=click.Path(dir_okay=False))
@click.option(
    "--duration",
    type=FiniteFloat(min=0, min_open=True),
    help="Stop cleanly after SECONDS (default: until SIGINT/SIGTERM).",
)
@click.option("--summary-json", type=click.Path(dir_okay=False), help="Write the summary here.")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, exists=True),
    help="YAML with settings and feeds.",
)
@click.option("--depth-limit", type=click.IntRange(min=1), help="REST book snapshot depth.")
@click.option(
    "--flush-interval",
    type=FiniteFloat(min=0, min_open=True, max=60),
    help="Seconds between store flushes. [default: 1]",
)
@click.option(
    "--stale-after",
    type=FiniteFloat(min=0, min_open=True),
    help="Reconnect a stream silent this long. [default: 60]",
)
@click.option(
    "--option", "options", multiple=True, metavar="KEY=VALUE", help="Venue option; repeatable."
)
@click.option(
    "--series",
    "series_text",
    metavar="SPECS",
    help=f"Derived series to compute and store, e.g. {EXAMPLE}. With --config: per feed key.",
)
@click.option(
    "--shard",
    metavar="auto|N",
    help="Collect only shard N of the symbols (auto: the StatefulSet ordinal of the host name).",
)
@click.option(
    "--shards",
    type=click.IntRange(min=1),
    help="Number of shards, the collector replica count (HUNDI_SHARDS). [default: 1]",
)
@click.option(
    "--health-port",
    type=click.IntRange(1, 65535),
    help="Serve /health and Prometheus /metrics on this port. [default: off]",
)
@click.option(
    "--health-host",
    default="127.0.0.1",
    show_default=True,
    help="Address of --health-port; not loopback: HUNDI_API_TOKEN is required.",
)
def collect(
    exchange: str | None,
    market: str | None,
    symbols: str | None,
    channels: str,
    endpoint: str | None,
    rest_endpoint: str | None,
    stores: tuple[str, ...],
    raw_dir: str | None,
    quarantine_path: str | None,
    duration: float | None,
    summary_json: str | None,
    config_path: str | None,
    depth_limit: int | None,
    flush_interval: float | None,
    stale_after: float | None,
    options: tuple[str, ...],
    series_text: str | None,
    shard: str | None,
    shards: int | None,
    health_port: int | None,
    health_host: str,
) -> None:
    """Collect market data from EXCHANGE (e.g. binance) into stores.

    Without EXCHANGE the feeds come from --config. Logs go to HUNDI_LOG_PATH; a live status
    screen is shown when stdout is a terminal.
    """
    try:
        config_file = load_config_file(Path(config_path)) if config_path else None
        settings = load_settings(
            {
                "store": stores or None,
                "flush_interval": flush_interval,
                "stale_after": stale_after,
                "shard": shard,
                "shards": shards,
            },
            config_file=config_file,
        )
        if exchange:
            venue_options = _options(options)
            if depth_limit is not None:
                venue_options["depth_limit"] = str(depth_limit)
            if not symbols:
                raise click.UsageError("--symbols is required with an EXCHANGE argument")
            feeds = [
                FeedConfig(
                    exchange=exchange.lower(),
                    market=(market or "spot").lower(),
                    symbols=_symbols(symbols),
                    channels=parse_channels(channels),
                    endpoint=endpoint,
                    rest_endpoint=rest_endpoint,
                    options=venue_options,
                    series=_series_option(series_text),
                )
            ]
        elif config_file and config_file.feeds:
            if series_text is not None:
                raise click.UsageError(
                    "--series applies to an EXCHANGE given on the command line; "
                    "with --config, set `series:` on each feed"
                )
            feeds = config_file.feeds
        else:
            raise click.UsageError("give an EXCHANGE (e.g. binance) or a --config with feeds")
        selected = resolve_shard(settings.shard, settings.shards)
        feeds = shard_feeds(feeds, selected)
        http = None if health_port is None else HttpListener(health_host, health_port)
    except (ConfigError, MetricsSetupError) as exc:
        _fail(str(exc))
    if selected is not None:
        mine = "; ".join(f"{f.exchange} {f.market} {','.join(f.symbols)}" for f in feeds)
        click.echo(f"{selected}: {mine}", err=True)
    code = _collect(feeds, settings, raw_dir, quarantine_path, duration, summary_json, http)
    sys.exit(code)


def spool_labels(groups: Sequence[tuple[str, ...]], stores: dict[str, Store]) -> list[list[str]]:
    """Per collector group, per store URL: the label its spool folder is named from. A store
    in several groups (feeds with their own ``stores``) gets one folder per group, since a
    folder serves one collector at a time: the store's label in the first group, ``<label>
    #<n>`` in the n-th (the same on every run of the same configuration)."""
    seen: dict[str, int] = {}
    labels: list[list[str]] = []
    for urls in groups:
        mine = []
        for url in urls:
            seen[url] = seen.get(url, 0) + 1
            label = stores[url].describe()
            mine.append(label if seen[url] == 1 else f"{label} #{seen[url]}")
        labels.append(mine)
    return labels


class HttpListener:
    """Where the health port listens and the token it requires (checked before collecting)."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.token = listener_token(host)
        self.sock = bind_listener(host, port)  # before any store opens: a taken port stops here
        self.port = int(self.sock.getsockname()[1])


def _series_option(text: str | None) -> SeriesPlan | None:
    if text is None:
        return None
    try:
        return _parse_series(text, "--series")
    except SeriesSpecError as exc:
        raise ConfigError(str(exc)) from None


def _series_engine(pairs: Sequence[tuple[FeedConfig, VenueProtocol]]) -> SeriesEngine | None:
    """The series engine of one collector (feeds sharing stores), checked against its feeds:
    every series needs its input channel, and a basis leg must be a collected BBO stream."""
    plans: list[tuple[Scope, SeriesPlan]] = []
    quoted: set[tuple[str, str]] = set()
    for feed, venue in pairs:
        symbols = frozenset((venue.exchange, venue.normalize_symbol(n)) for n in feed.symbols)
        if Channel.BBO in feed.channels:
            quoted |= symbols
        if feed.series:
            plans.append((symbols, feed.series))
    for feed, _ in pairs:
        for spec in feed.series.specs if feed.series else ():
            if isinstance(spec, BasisSpec):
                for leg in (spec.leg_a, spec.leg_b):
                    if not any(leg.matches(*key) for key in quoted):
                        _fail(
                            f"series basis: leg {leg.label} is not a collected bbo stream of "
                            "feeds sharing these stores (add it as a feed with channel bbo)"
                        )
                continue
            needed = Channel.BOOK if isinstance(spec, BookTopSpec) else Channel.TRADES
            if needed not in feed.channels:
                _fail(
                    f"series for {feed.exchange} {feed.market}: {needed.value} must be among "
                    f"its channels ({', '.join(c.value for c in feed.channels)})"
                )
    return SeriesEngine(plans) if plans else None


def _options(pairs: Sequence[str]) -> dict[str, str]:
    result: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint="--option")
        result[key.strip()] = value.strip()
    return result


def venue_config(feed: FeedConfig) -> VenueConfig:
    """The one place a feed becomes what its venue protocol (and the capture header) takes:
    the venue part of a :class:`FeedConfig` (its ``stores`` and ``series`` are ours)."""
    return VenueConfig(
        market=feed.market,
        symbols=feed.symbols,
        channels=feed.channels,
        endpoint=feed.endpoint,
        rest_endpoint=feed.rest_endpoint,
        options=dict(feed.options),
    )


def _build_venues(feeds: Sequence[FeedConfig]) -> list[tuple[FeedConfig, VenueProtocol]]:
    venues = []
    for feed in feeds:
        try:
            factory = venue_factory(feed.exchange)
            venue = factory(venue_config(feed))
        except ValueError as exc:
            _fail(str(exc))
        venues.append((feed, venue))
    return venues


def _open_stores(urls: Sequence[str]) -> dict[str, Store]:
    opened: dict[str, Store] = {}
    for url in urls:
        if url in opened:
            continue
        try:
            opened[url] = open_store(url)
        except StoreError as exc:
            for store in opened.values():
                with contextlib.suppress(Exception):
                    store.close()
            _fail(str(exc))
    return opened


def _one_feed_per_venue(feeds: Sequence[FeedConfig]) -> None:
    """A raw capture tells venues apart by exchange and market (their connection keys are the
    venue's own): two feeds of one venue in one capture could not be replayed apart."""
    seen = Counter(venue_id(feed.exchange, venue_config(feed).market) for feed in feeds)
    twice = sorted(venue for venue, count in seen.items() if count > 1)
    if twice:
        _fail(
            f"--raw: {', '.join(twice)} has several feeds in this config, which one capture "
            "cannot tell apart; merge them into one feed, or capture them in separate runs"
        )


def _quarantine_path(explicit: str | None, raw_dir: str | None, stores: Sequence[str]) -> Path:
    """``--quarantine``, else next to the raw capture, else inside the first file store."""
    if explicit:
        return Path(explicit)
    if raw_dir:
        return Path(raw_dir) / "quarantine.jsonl"
    for url in stores:
        if scheme_of(url) == "file":
            return Path(url.removeprefix("file:")) / "quarantine.jsonl"
    return Path("quarantine.jsonl")


def _collect(
    feeds: Sequence[FeedConfig],
    settings: Settings,
    raw_dir: str | None,
    quarantine_path: str | None,
    duration: float | None,
    summary_json: str | None,
    http: HttpListener | None = None,
) -> int:
    venues = _build_venues(feeds)
    # Feeds with their own ``stores`` go there; the others to the settings' stores. One
    # collector per distinct store set keeps routing trivial.
    groups: dict[tuple[str, ...], list[VenueProtocol]] = {}
    grouped_feeds: dict[tuple[str, ...], list[tuple[FeedConfig, VenueProtocol]]] = {}
    for feed, venue in venues:
        groups.setdefault(feed.stores or settings.store, []).append(venue)
        grouped_feeds.setdefault(feed.stores or settings.store, []).append((feed, venue))
    engines = {urls: _series_engine(pairs) for urls, pairs in grouped_feeds.items()}
    all_urls = [url for urls in groups for url in urls]
    stores = _open_stores(all_urls)
    if summary_json:
        _check_writable_file(Path(summary_json))
    logs = _start_logging(settings)
    capture = None
    if raw_dir:
        _one_feed_per_venue(feeds)
        try:
            capture = RawCaptureWriter(
                raw_dir,
                venues=[venue_header(feed.exchange, venue_config(feed)) for feed, _ in venues],
            )
        except CaptureError as exc:
            logs.close()
            _fail(str(exc))
    # each venue's own hook: a capture of several venues names the venue in every event
    capture_hooks = {
        venue: capture.for_venue(feed.exchange, venue_config(feed).market)
        for feed, venue in venues
        if capture is not None
    }
    quarantine = Quarantine(_quarantine_path(quarantine_path, raw_dir, all_urls))
    quarantine_hooks = {
        venue: quarantine.for_venue(feed.exchange, venue_config(feed).market)
        for feed, venue in venues
    }
    collector_settings = CollectorSettings(
        flush_interval=settings.flush_interval,
        queue_batches=settings.queue_batches,
        queue_bytes=settings.queue_mb * 2**20,
        connection=ConnectionSettings(stale_after_s=settings.stale_after),
        spool_dir=settings.spool_dir,
        spill_after_s=settings.spill_after,
        store_give_up_after_s=settings.store_give_up_after,
    )
    client = default_client(settings.ws_client)
    collectors: list[Collector] = []
    labels = spool_labels(list(groups), stores)
    try:
        for (urls, group_venues), group_labels in zip(groups.items(), labels, strict=True):
            collectors.append(
                Collector(
                    group_venues,
                    [stores[url] for url in urls],
                    settings=collector_settings,
                    client=client,
                    capture_of=capture_hooks.get,
                    quarantine_of=quarantine_hooks.get,
                    series=engines[urls],
                    spool_labels=group_labels,
                )
            )
    except SpoolError as exc:  # another collector's spool folder: stop before collecting
        for collector in collectors:
            collector.close_spools()
        if capture is not None:
            with contextlib.suppress(CaptureError):
                capture.close()
        quarantine.close()
        logs.close()
        _fail(str(exc))
    try:
        summaries = asyncio.run(_run(collectors, settings, logs, duration, http))
    finally:
        if capture is not None:
            try:
                capture.close()
            except CaptureError as exc:
                if not any(c.capture_error for c in collectors):  # else reported when it failed
                    click.echo(f"Error: {exc}", err=True)
        quarantine.close()  # never raises either
        logs.close()  # never raises: a full log disk must not take the exit down
    summary = summaries[0] if len(summaries) == 1 else _merge(summaries)
    summary["quarantine"] = {
        "path": str(quarantine.path),
        "frames": quarantine.count,
        "unwritten": quarantine.unwritten,
        "error": quarantine.error,
    }
    summary["log_path"] = str(settings.log_path)
    summary["log_dropped"] = logs.dropped
    summary["ws_client"] = client.name
    if capture is not None:
        summary["raw"] = {
            "files": [str(p) for p in capture.paths],
            "events": capture.events_written,
            "error": capture.error,
        }
    summary["outcome"] = judge(summary)
    print_summary(summary, click.echo)
    if summary_json:
        Path(summary_json).write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    code: int = summary["outcome"]["exit_code"]
    return code


def _check_writable_file(path: Path) -> None:
    problem = unwritable_file("--summary-json", path)
    if problem is not None:
        _fail(problem)


def _start_logging(settings: Settings) -> LogRuntime:
    try:
        return setup_logging(
            settings.log_path,
            queue_max_size=settings.log_queue_max_size,
            max_lines=settings.log_max_lines,
            console=not sys.stdout.isatty(),
            log_format=settings.log_format,
            stream=settings.log_stream,
        )
    except ConfigError as exc:
        _fail(str(exc))


async def _run(
    collectors: Sequence[Collector],
    settings: Settings,
    logs: LogRuntime,
    duration: float | None,
    http: HttpListener | None = None,
) -> list[dict[str, Any]]:
    loop = asyncio.get_running_loop()
    runner = None
    if http is not None:
        app = collector_http_app(collectors, settings.stale_after, http.token)
        runner = await start_http(app, http.sock)
        auth = "token required" if http.token else "no token: loopback only"
        click.echo(f"health port: http://{http.host}:{http.port}/metrics ({auth})", err=True)

    def stop_all(reason: str) -> None:
        for collector in collectors:
            collector.stop(reason)

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop_all, signal.Signals(signum).name)
    reporters = [
        StatusReporter(
            c,
            interval=settings.log_update_interval,
            line_interval=settings.status_line_interval,
            log_lines=logs.recent.lines,
        )
        for c in collectors
    ]
    status_tasks = [asyncio.create_task(r.run()) for r in reporters]
    # The health file `hundi health` reads (Docker HEALTHCHECK, Kubernetes probes), same pace.
    status_tasks.append(
        asyncio.create_task(
            run_health_loop(
                health_path(settings),
                settings.log_update_interval,
                lambda: collector_health(collectors, settings.stale_after),
            )
        )
    )
    try:
        return list(await asyncio.gather(*(c.run(duration) for c in collectors)))
    finally:
        for task in status_tasks:
            task.cancel()
        await asyncio.gather(*status_tasks, return_exceptions=True)
        if runner is not None:
            await runner.cleanup()


def _merge(summaries: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Several collectors (feeds with different stores) → one summary, counters summed."""
    merged: dict[str, Any] = {"collectors": list(summaries)}
    frames: dict[str, Any] = {"rejected_reasons": {}}
    for key in ("received", "processed", "filtered", "rejected"):
        frames[key] = sum(s["frames"][key] for s in summaries)
    for s in summaries:
        for reason, n in s["frames"]["rejected_reasons"].items():
            frames["rejected_reasons"][reason] = frames["rejected_reasons"].get(reason, 0) + n
    records: dict[str, int] = {}
    for s in summaries:
        for channel, n in s["records"].items():
            records[channel] = records.get(channel, 0) + n
    merged.update(
        frames=frames,
        records=records,
        gaps=sum(s["gaps"] for s in summaries),
        resyncs=sum(s["resyncs"] for s in summaries),
        reconnects=sum(s["reconnects"] for s in summaries),
        invalid_symbols=list(dict.fromkeys(n for s in summaries for n in s["invalid_symbols"])),
        auth_refused=list(dict.fromkeys(a for s in summaries for a in s.get("auth_refused", []))),
        balanced=all(s["balanced"] for s in summaries),
        duration_s=max(s["duration_s"] for s in summaries),
        stopping_s=max(s["stopping_s"] for s in summaries),
        msgs_per_s=sum(s["msgs_per_s"] for s in summaries),
        streams={k: v for s in summaries for k, v in s["streams"].items()},
        stores=[store for s in summaries for store in s["stores"]],
        series=_merge_series([s["series"] for s in summaries if s.get("series")]),
    )
    return merged


def _merge_series(parts: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    if not parts:
        return None
    merged: dict[str, Any] = {"records": {}}
    for part in parts:
        for channel, n in part["records"].items():
            merged["records"][channel] = merged["records"].get(channel, 0) + n
        for key, value in part.items():
            if key == "behind":
                merged[key] = merged.get(key, False) or value
            elif isinstance(value, int | float) and not isinstance(value, bool):
                merged[key] = merged.get(key, 0) + value
    merged["last_error"] = next((p["last_error"] for p in parts if p["last_error"]), "")
    merged["specs"] = [entry for part in parts for entry in part.get("specs", ())]
    return merged
