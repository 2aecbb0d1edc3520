"""The asyncio I/O layer: WebSocket streams and REST calls for any sans-I/O venue protocol."""

from hundi.connection.backoff import Backoff
from hundi.connection.client import (
    CloseInfo,
    WsClient,
    WsConnectError,
    WsConnection,
    default_client,
)
from hundi.connection.manager import ConnectionManager, ConnectionSettings, StreamStats

__all__ = [
    "Backoff",
    "CloseInfo",
    "ConnectionManager",
    "ConnectionSettings",
    "StreamStats",
    "WsClient",
    "WsConnectError",
    "WsConnection",
    "default_client",
]
