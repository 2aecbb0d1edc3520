"""``hundi simulate coinbase``: Coinbase Exchange ws-feed and REST market data, real sockets."""
