-- Market data persisted by the screener: at most one row per symbol and minute
-- (the screener batches ticks and upserts, so the newest tick of a minute wins).
CREATE TABLE IF NOT EXISTS market_snapshots (
    id            BIGSERIAL PRIMARY KEY,
    symbol        TEXT        NOT NULL CHECK (symbol ~ '^[A-Z0-9]{2,30}$'),
    minute        TIMESTAMPTZ NOT NULL CHECK (minute = date_trunc('minute', minute)),
    price         NUMERIC(30, 12) NOT NULL CHECK (price > 0),
    open_24h      NUMERIC(30, 12) NOT NULL CHECK (open_24h > 0),
    high_24h      NUMERIC(30, 12) NOT NULL CHECK (high_24h > 0),
    low_24h       NUMERIC(30, 12) NOT NULL CHECK (low_24h > 0),
    base_volume   NUMERIC(38, 12) NOT NULL CHECK (base_volume >= 0),
    quote_volume  NUMERIC(38, 12) NOT NULL CHECK (quote_volume >= 0),
    change_pct    NUMERIC(18, 8)  NOT NULL,
    event_time    TIMESTAMPTZ NOT NULL,
    source        TEXT        NOT NULL DEFAULT 'binance',
    is_probe      BOOLEAN     NOT NULL DEFAULT FALSE,
    inserted_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT market_snapshots_one_per_minute UNIQUE (symbol, minute)
);
CREATE INDEX IF NOT EXISTS market_snapshots_minute_idx ON market_snapshots (minute DESC);
