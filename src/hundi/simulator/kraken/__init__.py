"""Kraken simulator: the spot WebSocket v2 public market data over real sockets, with faults."""
