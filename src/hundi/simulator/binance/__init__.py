"""The Binance simulator: spot, USD-M and COIN-M wire formats and rules over the shared market
model.

``BinanceSimulator`` (``server``, in-process, ``async with``) and ``SimulatorConfig`` (``config``);
``hundi simulate binance`` is ``command``.
"""
