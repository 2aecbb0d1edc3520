"""Split the configured symbols across collector replicas (a Kubernetes StatefulSet).

Every replica reads the same feed list; replica ``i`` of ``n`` keeps the symbols at positions
``i, i+n, i+2n, ...`` of the list of all feeds' symbols in config order. So every symbol lands in
exactly one shard, shards differ by at most one symbol overall and within each feed, and the
split depends only on the config and ``n`` (no coordination between pods). ``auto`` takes
``i`` from the StatefulSet pod name (``collectors-2`` → 2); ``n`` must equal the replica count,
so scaling means changing both (the overlays set them together).
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Sequence
from dataclasses import dataclass, replace

from hundi.config import ConfigError, FeedConfig

_ORDINAL = re.compile(r"-(\d+)$")


class ShardError(ConfigError):
    """The shard settings are unusable; the message names HUNDI_SHARD / HUNDI_SHARDS."""


@dataclass(frozen=True, slots=True)
class Shard:
    index: int
    count: int

    def __str__(self) -> str:
        return f"shard {self.index} of {self.count}"


def ordinal_from_hostname(hostname: str) -> int:
    """The StatefulSet ordinal at the end of a pod name: ``collectors-2`` → 2."""
    match = _ORDINAL.search(hostname.strip())
    if match is None:
        raise ShardError(
            f"HUNDI_SHARD=auto: host name {hostname!r} does not end in -<ordinal> "
            "(a StatefulSet pod name such as collectors-2); set HUNDI_SHARD to a number instead"
        )
    return int(match.group(1))


def resolve_shard(spec: str, count: int, hostname: str | None = None) -> Shard | None:
    """``spec`` is '' (no sharding), 'auto' (ordinal from the host name) or an index."""
    spec = spec.strip().lower()
    if not spec:
        return None
    if count < 1:
        raise ShardError(f"HUNDI_SHARDS must be a positive integer, got {count}")
    if spec == "auto":
        if hostname is None:  # Kubernetes sets HOSTNAME to the pod name
            hostname = os.environ.get("HOSTNAME") or socket.gethostname()
        index = ordinal_from_hostname(hostname)
    elif spec.isdigit():
        index = int(spec)
    else:
        raise ShardError(f"HUNDI_SHARD must be 'auto' or a shard number, got {spec!r}")
    if index >= count:
        raise ShardError(
            f"shard {index} does not exist with HUNDI_SHARDS={count} (shards are 0..{count - 1}); "
            "set HUNDI_SHARDS to the StatefulSet's replica count"
        )
    return Shard(index, count)


def shard_feeds(feeds: Sequence[FeedConfig], shard: Shard | None) -> list[FeedConfig]:
    """The feeds restricted to ``shard``'s symbols; feeds left without a symbol are dropped."""
    if shard is None:
        return list(feeds)
    position = 0
    kept: list[FeedConfig] = []
    for feed in feeds:
        mine = []
        for symbol in feed.symbols:
            if position % shard.count == shard.index:
                mine.append(symbol)
            position += 1
        if mine:
            kept.append(replace(feed, symbols=tuple(mine)))
    if not kept:
        raise ShardError(
            f"{shard} gets no symbol: the config lists {position} symbol(s) in all; "
            "lower HUNDI_SHARDS (and the replica count) to at most that"
        )
    return kept
