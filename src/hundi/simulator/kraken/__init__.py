"""Kraken simulator: spot WebSocket v2 market data and v1 books over real sockets, with faults."""
