"""The Binance simulator: spot and USD-M wire formats and rules over the shared market model.

``BinanceSimulator`` (``server``, in-process, ``async with``) and ``SimulatorConfig`` (``config``);
``hundi simulate binance`` is ``command``.
"""
