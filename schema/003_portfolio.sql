-- Portfolio state kept by execution. `portfolio` separates the real paper portfolio ('main')
-- from the one validate's end-to-end probe trades in ('probe'), so a probe never moves real equity.
CREATE TABLE IF NOT EXISTS positions (
    portfolio        TEXT        NOT NULL DEFAULT 'main',
    symbol           TEXT        NOT NULL,
    qty              NUMERIC(38, 18) NOT NULL CHECK (qty >= 0),
    avg_entry_price  NUMERIC(30, 12) NOT NULL CHECK (avg_entry_price >= 0),
    last_price       NUMERIC(30, 12) NOT NULL CHECK (last_price >= 0),
    realized_pnl     NUMERIC(30, 12) NOT NULL DEFAULT 0,
    opened_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (portfolio, symbol)
);

CREATE TABLE IF NOT EXISTS portfolio_snapshots (
    id               BIGSERIAL PRIMARY KEY,
    portfolio        TEXT        NOT NULL DEFAULT 'main',
    taken_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    cash             NUMERIC(30, 12) NOT NULL,
    equity           NUMERIC(30, 12) NOT NULL,
    exposure         NUMERIC(30, 12) NOT NULL CHECK (exposure >= 0),
    realized_pnl     NUMERIC(30, 12) NOT NULL,
    unrealized_pnl   NUMERIC(30, 12) NOT NULL,
    peak_equity      NUMERIC(30, 12) NOT NULL CHECK (peak_equity >= 0),
    day_start_equity NUMERIC(30, 12) NOT NULL CHECK (day_start_equity >= 0),
    -- Drawdown is measured on the equity curve (cash + marked-to-market positions).
    drawdown_pct     NUMERIC(12, 6)  NOT NULL CHECK (drawdown_pct >= 0 AND drawdown_pct <= 100),
    daily_drawdown_pct NUMERIC(12, 6) NOT NULL CHECK (daily_drawdown_pct >= 0 AND daily_drawdown_pct <= 100),
    trigger_trade_id UUID REFERENCES trades (trade_id)
);
CREATE INDEX IF NOT EXISTS portfolio_snapshots_taken_idx ON portfolio_snapshots (portfolio, taken_at DESC);

CREATE TABLE IF NOT EXISTS daily_pnl (
    portfolio        TEXT        NOT NULL DEFAULT 'main',
    day              DATE        NOT NULL,
    start_equity     NUMERIC(30, 12) NOT NULL CHECK (start_equity >= 0),
    end_equity       NUMERIC(30, 12) NOT NULL,
    high_equity      NUMERIC(30, 12) NOT NULL,
    low_equity       NUMERIC(30, 12) NOT NULL,
    realized_pnl     NUMERIC(30, 12) NOT NULL DEFAULT 0,
    fees             NUMERIC(30, 12) NOT NULL DEFAULT 0 CHECK (fees >= 0),
    trades           INTEGER     NOT NULL DEFAULT 0 CHECK (trades >= 0),
    max_drawdown_pct NUMERIC(12, 6) NOT NULL DEFAULT 0 CHECK (max_drawdown_pct >= 0),
    breaker_tripped  BOOLEAN     NOT NULL DEFAULT FALSE,
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (portfolio, day),
    CHECK (low_equity <= high_equity)
);
