"""Every record type declares an IDENTITY that stores can key rows by."""

from __future__ import annotations

import msgspec
import pytest

from hundi.records import RECORD_TYPES, Channel

KEYED_ELSEWHERE = {"exchange", "symbol", "ts"}  # always part of a store's key
LOCAL_FIELDS = {"recv_ts", "native_symbol"}  # differ between collectors: must not identify


@pytest.mark.parametrize("channel", list(RECORD_TYPES), ids=str)
def test_identity_names_exchange_fields_of_the_record(channel: Channel) -> None:
    record_type = RECORD_TYPES[channel]
    identity = getattr(record_type, "IDENTITY", None)
    assert identity, f"{record_type.__name__} declares no IDENTITY"
    fields = {f.name for f in msgspec.structs.fields(record_type)}
    assert set(identity) <= fields, f"{record_type.__name__}.IDENTITY names unknown fields"
    assert not set(identity) & (KEYED_ELSEWHERE | LOCAL_FIELDS)
    assert len(set(identity)) == len(identity)
