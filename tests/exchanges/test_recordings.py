"""Every registered exchange on the real recordings it claims (``../shared/recordings``).

Parametrised from the registry: an exchange listing ``recordings=("NAME", ...)`` in its
:class:`~hundi.exchanges.registry.Exchange` joins this test for each ``NAME.*`` file group, with
no edit here. Each group is replayed as ``hundi replay`` does it (the config inferred from the
files, the exchange's protocol driven by :func:`hundi.capture.replay.replay_events`): every
received frame reaches the protocol and is processed, filtered or rejected, and no synced book
is ever crossed, checked after every frame and every REST snapshot.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path

import pytest

from hundi.accounting import Accounting
from hundi.capture.events import CaptureEvent, CaptureKind
from hundi.capture.infer import infer_config, infer_exchange
from hundi.capture.reader import read_capture
from hundi.capture.replay import Batch, replay_events
from hundi.exchanges import exchanges
from hundi.exchanges.base import (
    FrameStatus,
    RecordSink,
    RestRequest,
    RestResponse,
    VenueProtocol,
)

CLAIMED = sorted((e.name, group) for e in exchanges().values() for group in e.recordings)


class BookWatch:
    """Checks a protocol's books after every frame and every answered REST request."""

    def __init__(self, protocol: VenueProtocol) -> None:
        self.protocol = protocol
        self.checks = 0
        self.crossed: list[str] = []

    def check(self, where: str) -> None:
        for book in self.protocol.books():
            self.checks += 1
            if (
                book.synced
                and not (math.isnan(book.best_bid) or math.isnan(book.best_ask))
                and book.best_bid >= book.best_ask
            ):
                self.crossed.append(f"{book.symbol} after {where}")

    def wrap(self) -> None:
        """Check after each ``receive`` and ``receive_response`` of the protocol instance."""
        protocol = self.protocol
        receive = protocol.receive
        receive_response = protocol.receive_response
        frames = iter(range(1, 1 << 62))

        def checked_receive(conn: str, data: bytes, recv_ns: int, out: RecordSink) -> FrameStatus:
            try:
                return receive(conn, data, recv_ns, out)
            finally:
                self.check(f"frame {next(frames)}")

        def checked_response(
            request: RestRequest, response: RestResponse, recv_ns: int, out: RecordSink
        ) -> None:
            receive_response(request, response, recv_ns, out)
            self.check(f"response to {request.key}")

        protocol.receive = checked_receive
        protocol.receive_response = checked_response


def group_files(recordings_dir: Path, group: str) -> list[Path]:
    return sorted(recordings_dir.glob(f"{group}.*"))


def received(events: Iterable[CaptureEvent]) -> int:
    return sum(1 for e in events if e.kind is CaptureKind.RECV)


def test_some_exchange_claims_recordings() -> None:
    """The parametrisation below is not silently empty."""
    assert CLAIMED


def test_no_two_exchanges_claim_one_group() -> None:
    groups = [group for _, group in CLAIMED]
    assert len(groups) == len(set(groups)), CLAIMED


@pytest.mark.parametrize(("name", "group"), CLAIMED, ids=[f"{n}:{g}" for n, g in CLAIMED])
def test_recording_replays_accounted_and_uncrossed(
    name: str, group: str, recordings_dir: Path
) -> None:
    files = group_files(recordings_dir, group)
    assert files, f"{name} claims recordings {group}.* but {recordings_dir} holds none"
    assert infer_exchange(files) == name  # what `hundi replay` without --exchange picks
    config = infer_config(files, name, None)
    config.authenticate = False  # as `hundi replay`: captured frames are parsed, never signed
    protocol = exchanges()[name].venue(config)
    watch = BookWatch(protocol)
    watch.wrap()
    accounting = Accounting()
    batches: list[Batch] = []
    stats = replay_events(read_capture(files), protocol, batches.append, accounting)

    frames = received(read_capture(files))
    assert frames > 0
    assert stats.skipped == 0
    assert accounting.received == frames, "every received frame reaches the protocol"
    assert accounting.received == (
        accounting.processed + accounting.filtered + accounting.rejected_total
    )
    assert accounting.processed > 0, "the recording produced no market data"
    assert sum(len(records) for batch in batches for records in batch.values()) > 0
    assert watch.crossed == []
    if protocol.books():
        assert watch.checks >= frames
