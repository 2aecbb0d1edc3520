"""The OKX v5 simulator (``hundi simulate okx``)."""
