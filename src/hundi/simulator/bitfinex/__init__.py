"""Bitfinex simulator: the authenticated v2 WebSocket (own orders and fills)."""
