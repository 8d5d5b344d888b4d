"""The screener's market_snapshots rows (the last tick per symbol and minute), written in one statement
per flush, free of I/O.

The rows travel as one JSON parameter that Postgres unpacks (json_to_recordset): executemany of one
INSERT per (symbol, minute) was ~14 % of the screener's time under a fast replay, every row a round of
parameter adaptation and protocol messages in psycopg's Python layer. Numbers travel as JSON strings,
cast by numeric's own input, so they arrive exact; times as epoch milliseconds, turned into timestamps
by integer interval arithmetic.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from decimal import Decimal

from .frames import MiniTicker

CHANGE_STEP = Decimal("0.00000001")  # change_pct is NUMERIC(18, 8)

UPSERT_SNAPSHOTS = """
INSERT INTO market_snapshots (symbol, minute, price, open_24h, high_24h, low_24h, base_volume, quote_volume,
                              change_pct, event_time, source, is_probe)
SELECT r.symbol, TIMESTAMPTZ 'epoch' + r.minute_ms * INTERVAL '1 millisecond', r.price, r.open, r.high, r.low,
       r.base_volume, r.quote_volume, r.change_pct, TIMESTAMPTZ 'epoch' + r.event_ms * INTERVAL '1 millisecond',
       r.source, r.is_probe
FROM json_to_recordset(%s::json) AS r(symbol text, minute_ms bigint, price numeric, open numeric, high numeric,
                                      low numeric, base_volume numeric, quote_volume numeric, change_pct numeric,
                                      event_ms bigint, source text, is_probe boolean)
ON CONFLICT (symbol, minute) DO UPDATE
SET price = EXCLUDED.price, open_24h = EXCLUDED.open_24h, high_24h = EXCLUDED.high_24h,
    low_24h = EXCLUDED.low_24h, base_volume = EXCLUDED.base_volume, quote_volume = EXCLUDED.quote_volume,
    change_pct = EXCLUDED.change_pct, event_time = EXCLUDED.event_time, is_probe = EXCLUDED.is_probe
WHERE market_snapshots.event_time <= EXCLUDED.event_time
"""
_ROW = (
    '{"symbol":"%s","minute_ms":%d,"price":"%s","open":"%s","high":"%s","low":"%s","base_volume":"%s",'
    '"quote_volume":"%s","change_pct":"%s","event_ms":%d,"source":%s,"is_probe":%s}'
)


def snapshot_rows_json(pending: Iterable[tuple[MiniTicker, bool]], source: str) -> str:
    """The JSON array UPSERT_SNAPSHOTS reads, one object per (ticker, is_probe). Symbols are [A-Z0-9] only
    (parse_item checks), so they need no escaping; the sources are escaped once."""
    feed_source, probe_source = json.dumps(source), json.dumps("probe")
    rows = []
    for t, probe in pending:
        rows.append(
            _ROW
            % (
                t.symbol,
                t.event_time // 60_000 * 60_000,
                format(t.close, "f"),
                format(t.open, "f"),
                format(t.high, "f"),
                format(t.low, "f"),
                format(t.base_volume, "f"),
                format(t.quote_volume, "f"),
                format(t.change_pct.quantize(CHANGE_STEP), "f"),
                t.event_time,
                probe_source if probe else feed_source,
                "true" if probe else "false",
            )
        )
    return "[" + ",".join(rows) + "]"
