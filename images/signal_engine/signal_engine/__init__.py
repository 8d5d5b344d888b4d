"""Signal engine: momentum signals from cdb:ticks to the signals table and cdb:signals."""
