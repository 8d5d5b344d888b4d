"""Screener: the exchange's all-market miniTicker stream, filtered, published as ticks and persisted."""
