-- The trading chain: signal -> risk event -> order -> trade. Every id is chosen by its producer
-- (a UUID carried in the stream event), so a redelivered event inserts nothing twice
-- (INSERT ... ON CONFLICT DO NOTHING). Money is NUMERIC end to end, never float.
CREATE TABLE IF NOT EXISTS signals (
    signal_id       UUID PRIMARY KEY,
    symbol          TEXT        NOT NULL,
    side            TEXT        NOT NULL CHECK (side IN ('BUY', 'SELL')),
    price           NUMERIC(30, 12) NOT NULL CHECK (price > 0),
    change_pct      NUMERIC(18, 8)  NOT NULL,
    window_seconds  INTEGER     NOT NULL CHECK (window_seconds > 0),
    quote_volume    NUMERIC(38, 12) NOT NULL CHECK (quote_volume >= 0),
    threshold_pct   NUMERIC(18, 8)  NOT NULL CHECK (threshold_pct > 0),
    confidence      NUMERIC(6, 5)   NOT NULL CHECK (confidence >= 0 AND confidence <= 1),
    tick_time       TIMESTAMPTZ NOT NULL,
    is_probe        BOOLEAN     NOT NULL DEFAULT FALSE,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS signals_symbol_created_idx ON signals (symbol, created_at DESC);

CREATE TABLE IF NOT EXISTS risk_events (
    risk_event_id   UUID PRIMARY KEY,
    signal_id       UUID        NOT NULL UNIQUE REFERENCES signals (signal_id),
    symbol          TEXT        NOT NULL,
    side            TEXT        NOT NULL CHECK (side IN ('BUY', 'SELL')),
    decision        TEXT        NOT NULL CHECK (decision IN ('APPROVED', 'REJECTED')),
    reason          TEXT        NOT NULL,
    requested_qty   NUMERIC(38, 18) NOT NULL CHECK (requested_qty >= 0),
    approved_qty    NUMERIC(38, 18) NOT NULL CHECK (approved_qty >= 0),
    price           NUMERIC(30, 12) NOT NULL CHECK (price > 0),
    equity          NUMERIC(30, 12) NOT NULL,
    exposure        NUMERIC(30, 12) NOT NULL CHECK (exposure >= 0),
    limits          JSONB       NOT NULL,
    portfolio       TEXT        NOT NULL DEFAULT 'main',
    is_probe        BOOLEAN     NOT NULL DEFAULT FALSE,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT risk_events_approved_has_qty
        CHECK (decision = 'REJECTED' OR approved_qty > 0),
    CONSTRAINT risk_events_rejected_has_no_qty
        CHECK (decision = 'APPROVED' OR approved_qty = 0)
);
CREATE INDEX IF NOT EXISTS risk_events_created_idx ON risk_events (created_at DESC);

CREATE TABLE IF NOT EXISTS orders (
    order_id        UUID PRIMARY KEY,
    risk_event_id   UUID        NOT NULL UNIQUE REFERENCES risk_events (risk_event_id),
    signal_id       UUID        NOT NULL REFERENCES signals (signal_id),
    symbol          TEXT        NOT NULL,
    side            TEXT        NOT NULL CHECK (side IN ('BUY', 'SELL')),
    qty             NUMERIC(38, 18) NOT NULL CHECK (qty > 0),
    reference_price NUMERIC(30, 12) NOT NULL CHECK (reference_price > 0),
    status          TEXT        NOT NULL DEFAULT 'NEW' CHECK (status IN ('NEW', 'FILLED', 'REJECTED')),
    reject_reason   TEXT,
    portfolio       TEXT        NOT NULL DEFAULT 'main',
    is_probe        BOOLEAN     NOT NULL DEFAULT FALSE,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS orders_status_idx ON orders (status);

CREATE TABLE IF NOT EXISTS trades (
    trade_id        UUID PRIMARY KEY,
    -- One fill per order: the unique key is what makes a redelivered order never fill twice.
    order_id        UUID        NOT NULL UNIQUE REFERENCES orders (order_id),
    symbol          TEXT        NOT NULL,
    side            TEXT        NOT NULL CHECK (side IN ('BUY', 'SELL')),
    qty             NUMERIC(38, 18) NOT NULL CHECK (qty > 0),
    price           NUMERIC(30, 12) NOT NULL CHECK (price > 0),
    reference_price NUMERIC(30, 12) NOT NULL CHECK (reference_price > 0),
    slippage_bps    NUMERIC(12, 4)  NOT NULL CHECK (slippage_bps >= 0),
    fee             NUMERIC(30, 12) NOT NULL CHECK (fee >= 0),
    notional        NUMERIC(30, 12) NOT NULL CHECK (notional > 0),
    realized_pnl    NUMERIC(30, 12) NOT NULL DEFAULT 0,
    portfolio       TEXT        NOT NULL DEFAULT 'main',
    is_probe        BOOLEAN     NOT NULL DEFAULT FALSE,
    executed_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS trades_executed_idx ON trades (executed_at DESC);
