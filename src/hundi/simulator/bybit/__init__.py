"""A Bybit v5 public market-data simulator (``hundi simulate bybit``)."""
