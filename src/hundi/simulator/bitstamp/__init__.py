"""Bitstamp WebSocket v2 + REST simulator (``hundi simulate bitstamp``)."""
