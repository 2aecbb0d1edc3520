"""What exchange and venue configuration produced a capture, so ``hundi replay`` needs no flags.

Our captures say it in their header, read here for every exchange. Foreign recordings are each
exchange's business: the registered ``infer_capture`` of the exchange
(:class:`~hundi.exchanges.registry.Exchange`) reads their URLs and messages; which exchange a
recording is comes from its file name (``NAME.ws.1.0``: the ``NAME`` an exchange lists in its
``recordings``).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from hundi.capture.format import VenueHeader
from hundi.capture.reader import expand, headers, is_ours
from hundi.exchanges.base import VenueConfig
from hundi.exchanges.registry import exchange as registered
from hundi.exchanges.registry import exchange_names, exchanges
from hundi.records import Channel


class InferenceError(ValueError):
    """The capture does not say enough; the message says which flag to pass."""


def config_of_header(venue: VenueHeader) -> VenueConfig:
    return VenueConfig(
        market=venue.market,
        symbols=tuple(venue.symbols),
        channels=tuple(Channel(c) for c in venue.channels),
        endpoint=venue.endpoint,
        rest_endpoint=venue.rest_endpoint,
        options=dict(venue.options),
    )


def recording_name(path: Path) -> str:
    """``KRAKEN.ws.50.0`` → ``KRAKEN``: the name an exchange's ``recordings`` list."""
    return path.name.split(".", 1)[0]


def infer_exchange(paths: Iterable[Path]) -> str:
    """The registered exchange a capture is of: ours say it in their header, recordings by
    their file names. InferenceError (one line) unless that names exactly one."""
    files = expand(paths)
    found = {v.exchange for h in headers(files) for v in h.venues}
    names = sorted({recording_name(p) for p in files if not is_ours(p)})
    if names:
        claimed = {
            n: e.name
            for e in exchanges().values()
            for n in names
            if n in e.recordings or n in e.other_recordings
        }
        unclaimed = [n for n in names if n not in claimed]
        if unclaimed:
            raise InferenceError(
                f"no registered exchange claims recordings named {', '.join(unclaimed)}; "
                f"give --exchange ({_known()})"
            )
        found.update(claimed.values())
    if len(found) == 1:
        return found.pop()
    if not found:
        raise InferenceError(f"the capture names no exchange; give --exchange ({_known()})")
    raise InferenceError(
        f"the capture holds several exchanges ({', '.join(sorted(found))}); pick one with "
        "--exchange"
    )


def infer_config(paths: Iterable[Path], exchange: str, market: str | None) -> VenueConfig:
    """The venue config of ``exchange`` in a capture (ours: header; recordings: the exchange's
    ``infer_capture``)."""
    files = expand(paths)
    ours = headers(files)
    if ours:
        venues = {(v.exchange, v.market): v for h in ours for v in h.venues}
        candidates = [
            v
            for (ex, mk), v in venues.items()
            if ex == exchange and (market is None or mk == market)
        ]
        if len(candidates) == 1:
            return config_of_header(candidates[0])
        if not candidates:
            raise InferenceError(
                f"the capture holds no {exchange} {market or ''} venue; it holds "
                + ", ".join(f"{ex} {mk}" for ex, mk in venues)
            )
        raise InferenceError(
            "the capture holds several venues ("
            + ", ".join(v.market for v in candidates)
            + "); pick one with --market"
        )
    try:
        infer = registered(exchange).infer_capture
    except ValueError as e:  # not registered: the message lists the known names
        raise InferenceError(str(e)) from None
    if infer is None:
        raise InferenceError(
            f"cannot infer a {exchange} configuration from recordings (the exchange registers "
            "no infer_capture); replay a capture written by `hundi collect --raw`"
        )
    try:
        return infer([p for p in files if not is_ours(p)], market)
    except InferenceError:
        raise
    except ValueError as e:
        raise InferenceError(str(e)) from None


def _known() -> str:
    return ", ".join(exchange_names())
