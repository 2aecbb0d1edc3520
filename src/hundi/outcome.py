"""How a ``hundi collect`` or ``hundi replay`` run ended: one outcome, one exit code, one summary.

Why one module: both commands judge their run by the same rules, print the same summary and
exit with the same codes, so a script, a Kubernetes Job or a person reads them the same way.
A run says "ok" (exit 0) only when it is true: frames were received and every record they
made is stored in every store.

Exit codes (docs/collecting.md#exit-codes):

* ``0`` ok: collected, and everything collected is stored;
* ``1`` incomplete: collected, but not all of it is stored (records lost, or still in the
  outage spool to be sent on the next start), the raw capture stopped, frames are unaccounted
  for, or (replay) the capture does not answer the protocol's REST requests;
* ``2`` setup: bad input (arguments, configuration, an unusable store or capture): nothing ran;
* ``3`` nothing collected: not one frame was received (an unreachable exchange) or replayed.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final

from hundi.records import Channel, EventKind, Record
from hundi.series.spec import (
    BasisSpec,
    BookTopSpec,
    FlowSpec,
    SeriesPlan,
    Spec,
    TickBars,
    TimeBars,
    VolumeBars,
    duration_label,
)

EXIT_OK: Final = 0
EXIT_INCOMPLETE: Final = 1
EXIT_SETUP: Final = 2
EXIT_NOTHING: Final = 3


class Result(enum.StrEnum):
    OK = "ok"
    INCOMPLETE = "incomplete"
    NOTHING_COLLECTED = "nothing_collected"


EXIT_CODES: Final = {
    Result.OK: EXIT_OK,
    Result.INCOMPLETE: EXIT_INCOMPLETE,
    Result.NOTHING_COLLECTED: EXIT_NOTHING,
}


# --- series: which configured series produced what, and why nothing -----------------------------

SeriesKey = tuple[str, ...]


def spec_text(spec: Spec) -> str:
    """A spec as ``--series`` spells it (``flow:1m@1s``)."""
    if isinstance(spec, TimeBars):
        return f"bars:{spec.interval.label}"
    if isinstance(spec, TickBars | VolumeBars):
        return spec.label
    if isinstance(spec, BookTopSpec):
        return f"book:{spec.depth}@{spec.interval.label}"
    if isinstance(spec, FlowSpec):
        return f"flow:{spec.window.label}@{spec.step.label}"
    return f"basis:{spec.leg_a.label}/{spec.leg_b.label}@{spec.interval.label}"


def spec_key(spec: Spec) -> SeriesKey:
    """What the records of ``spec`` carry (see :func:`record_key`)."""
    if isinstance(spec, TimeBars):
        return (Channel.BARS.value, spec.interval.label)
    if isinstance(spec, TickBars | VolumeBars):
        return (Channel.BARS.value, spec.label)
    if isinstance(spec, BookTopSpec):
        return (Channel.BOOK_TOP.value, spec.interval.label, str(spec.depth))
    if isinstance(spec, FlowSpec):
        return (Channel.FLOW.value, spec.step.label, spec.window.label)
    return (Channel.BASIS.value, spec.interval.label, spec.pair_symbol)


def record_key(channel: Channel, record: Record) -> SeriesKey | None:
    """The series a derived record belongs to, as :func:`spec_key` names it."""
    interval = str(getattr(record, "interval", ""))
    if channel is Channel.BARS:
        return (channel.value, interval)
    if channel is Channel.BOOK_TOP:
        return (channel.value, interval, str(getattr(record, "depth", "")))
    if channel is Channel.FLOW:
        return (channel.value, interval, str(getattr(record, "window", "")))
    if channel is Channel.BASIS:
        return (channel.value, interval, record.symbol)
    return None  # book_levels: counted with their book_top


class SeriesTally:
    """Derived records per configured series. Counted per drained series output (a few records
    per interval), never per frame."""

    def __init__(self) -> None:
        self.counts: Counter[SeriesKey] = Counter()

    def add(self, batch: Mapping[Channel, Sequence[Record]]) -> None:
        for channel, records in batch.items():
            for record in records:
                key = record_key(channel, record)
                if key is not None:
                    self.counts[key] += 1


def series_report(
    plans: Iterable[SeriesPlan], tally: SeriesTally, run_s: float
) -> list[dict[str, Any]]:
    """One entry per configured series: records produced and, for none, why (``run_s``: the
    span of data the run saw)."""
    report: dict[str, dict[str, Any]] = {}
    for plan in plans:
        for spec in plan.specs:
            text = spec_text(spec)
            if text in report:
                continue
            produced = tally.counts[spec_key(spec)]
            entry: dict[str, Any] = {"series": text, "records": produced}
            if not produced:
                entry["why_none"] = _why_none(spec, plan.grace_ns, run_s)
            report[text] = entry
    return list(report.values())


def _why_none(spec: Spec, grace_ns: int, run_s: float) -> str:
    grace = duration_label(grace_ns)
    ran = f"the run saw {run_s:.1f}s of data"
    if isinstance(spec, FlowSpec):
        needed_ns = spec.window.ns + spec.step.ns + grace_ns
        if run_s * 1e9 < needed_ns:
            return (
                f"a value needs a full {spec.window.label} window of {spec.step.label} bars "
                f"(+ {spec.step.label} + {grace} grace to close); {ran}"
            )
        return "no trades for its symbols"
    if isinstance(spec, TimeBars | BookTopSpec | BasisSpec):
        interval = spec.interval
        if run_s * 1e9 < interval.ns + grace_ns:
            closes = f"{interval.label} + {grace} grace"
            return f"the first {interval.label} interval closes after {closes}; {ran}"
        if isinstance(spec, BookTopSpec):
            return "no book was synced for its symbols (a sample needs a synced book)"
        if isinstance(spec, BasisSpec):
            return "no quotes (bbo) of both legs within one interval"
        return "no trades for its symbols"
    if isinstance(spec, TickBars):
        return f"no symbol reached {spec.count} trades"
    return f"no symbol traded {spec.volume:g} (base units)"


# --- the outcome ---------------------------------------------------------------------------------


def auth_refusal(event: object) -> str | None:
    """An ``auth_failed`` event's refusal, once per cause (not per attempt: the detail before
    its "; attempt n" part), for the summary's ``auth_refused``; None for other events."""
    if getattr(event, "kind", "") != EventKind.AUTH_FAILED:
        return None
    return str(getattr(event, "detail", "")).split("; ", 1)[0]


def judge(summary: Mapping[str, Any], problems: Sequence[str] = ()) -> dict[str, Any]:
    """The run's outcome from its summary: ``{"result", "exit_code", "reasons"}``.
    ``problems`` are the caller's own reasons the run is incomplete (a replay's unanswered
    REST requests)."""
    reasons: list[str] = []
    market_records = sum(v for k, v in summary["records"].items() if k != "events")
    streams = summary.get("streams", {})
    if summary["frames"]["received"] == 0 and (streams or market_records == 0):
        failures = [
            f"{key}: {stream['last_error']}"
            for key, stream in streams.items()
            if stream.get("last_error")
        ]
        reasons.append("no frame received" + (f" ({'; '.join(failures)})" if failures else ""))
        # records that came over REST alone (instruments, open interest) were still stored
        result = Result.NOTHING_COLLECTED if market_records == 0 else Result.INCOMPLETE
    else:
        # frames came, or none were asked for (REST-only channels such as instruments)
        result = Result.OK
        invalid = summary.get("invalid_symbols") or []
        if invalid and market_records == 0:
            # every symbol asked for is unknown to the exchange (a typo): frames came (acks,
            # the listing), data did not
            reasons.append(
                "no market data: every symbol is invalid (the exchange does not list, trade or "
                "name them as asked; see their invalid_symbol events): " + ", ".join(invalid)
            )
            result = Result.NOTHING_COLLECTED
        elif invalid:  # asked for and not collected as asked: not "ok", though the rest was
            reasons.append(
                "invalid symbols (the exchange does not list, trade or name them as asked; see "
                "their invalid_symbol events): " + ", ".join(invalid)
            )
    for refused in summary.get("auth_refused") or []:  # authenticated channels missed data
        reasons.append(f"{refused}: its authenticated channels were not collected meanwhile")
    for store in summary["stores"]:
        error = f" ({store['last_error']})" if store.get("last_error") else ""
        lost = sum(store["lost"].values())
        if lost:
            reasons.append(f"store {store['store']}: {lost} records lost{error}")
        spooled = sum(store["spooled"].values())
        if spooled:
            reasons.append(
                f"store {store['store']}: {spooled} records not stored, kept in the outage "
                f"spool for the next start{error}"
            )
        if store.get("gave_up") and not lost:
            reasons.append(str(store["gave_up"]))
    raw_error = (summary.get("raw") or {}).get("error")
    if raw_error:
        reasons.append(f"raw capture stopped early: {raw_error}")
    if not summary["balanced"]:
        reasons.append("frames unaccounted for (received != processed + filtered + rejected)")
    reasons.extend(problems)
    if reasons and result is Result.OK:
        result = Result.INCOMPLETE
    return {"result": result.value, "exit_code": EXIT_CODES[result], "reasons": reasons}


# --- the printed summary -------------------------------------------------------------------------


def _stored_where(stores: Sequence[Any]) -> str:
    if not stores:
        return "parsed"
    return "stored" if len(stores) == 1 else "stored in every store"


def _series_line(series: Mapping[str, Any]) -> str:
    records = ", ".join(f"{k}={v}" for k, v in series["records"].items()) or "none"
    line = f"series computed: {records}"
    if series["behind"]:
        line += (
            f"; FELL BEHIND: {series['dropped_batches']} batches "
            f"({series['dropped_records']} records) not computed, series restarted"
        )
    if series["late_records"]:
        line += f"; {series['late_records']} records arrived after their interval was emitted"
    if series["errors"]:
        line += f"; {series['errors']} errors ({series['last_error']})"
    return line


def _store_line(store: Mapping[str, Any]) -> str:
    stored = sum(store["records"].values())
    lost = sum(store["lost"].values())
    spooled = sum(store["spooled"].values())
    states = []
    if lost:
        state = f"LOST {lost} records ({store['last_error']})"
        if store.get("loss_events"):
            state += f", described by {store['loss_events']} stored gap events"
        states.append(state)
    if spooled:
        states.append(
            f"NOT STORED: {spooled} records in the outage spool, sent on the next start "
            f"({store['last_error']})"
        )
    return f"store {store['store']}: {stored} records, {'; '.join(states) or 'ok'}"


def summary_lines(summary: Mapping[str, Any]) -> list[str]:
    """The summary as text (the same for collect and replay); the last line is the outcome."""
    frames = summary["frames"]
    reasons = ", ".join(f"{k}={v}" for k, v in frames["rejected_reasons"].items())
    records = ", ".join(f"{k}={v}" for k, v in summary["records"].items() if v)
    if "replay" in summary:
        head = (
            f"replayed {summary['replay']['events']} captured events "
            f"({summary['replay']['span_s']:.1f}s of capture) in {summary['duration_s']:.1f}s "
            f"({summary['msgs_per_s']:,.0f} msgs/s)"
        )
    else:
        head = (
            f"collected for {summary['duration_s']:.1f}s, stopped in "
            f"{summary.get('stopping_s', 0.0):.1f}s "
            f"({summary['msgs_per_s']:,.0f} msgs/s, client {summary['ws_client']})"
        )
    lines = [
        head,
        f"frames: received {frames['received']}, processed {frames['processed']}, "
        f"filtered {frames['filtered']}, rejected {frames['rejected']}"
        + (f" ({reasons})" if reasons else ""),
        # with no store (a replay's --dry-run) the records were made, not stored; with
        # several, the count is what every one of them stored (each store's line follows)
        f"records {_stored_where(summary['stores'])}: {records or 'none'}",
        f"gaps {summary['gaps']}, resyncs {summary['resyncs']}, reconnects {summary['reconnects']}",
    ]
    if summary.get("series"):
        lines.append(_series_line(summary["series"]))
        for entry in summary["series"].get("specs", ()):
            if not entry["records"]:
                lines.append(f"series {entry['series']}: nothing produced: {entry['why_none']}")
    if summary.get("invalid_symbols"):
        lines.append(
            "not listed or not trading on the exchange (no data for them): "
            + ", ".join(summary["invalid_symbols"])
        )
    lines.extend(_store_line(store) for store in summary["stores"])
    if summary.get("raw", {}).get("error"):
        lines.append(f"raw capture STOPPED early: {summary['raw']['error']}")
    if summary.get("log_dropped"):
        lines.append(
            f"log lines dropped (queue full or log file unwritable): {summary['log_dropped']}"
        )
    outcome = summary["outcome"]
    if outcome["result"] == Result.OK:
        lines.append("outcome: ok (exit 0)")
    else:
        label = outcome["result"].replace("_", " ").upper()
        lines.append(
            f"outcome: {label} (exit {outcome['exit_code']}): " + "; ".join(outcome["reasons"])
        )
    return lines


def print_summary(summary: Mapping[str, Any], echo: Callable[[str], None]) -> None:
    echo("\n".join(summary_lines(summary)))
