-- One book (portfolio) per feed: trades driven by the replay feed never land in the live paper account
-- (issue 11.2). Every trading row names its book: 'live' or 'replay' (the feed, CDB_FEED), or 'probe'
-- (validate's end-to-end probe, in neither book). Re-runnable: every statement is a no-op the 2nd time.
ALTER TABLE signals ADD COLUMN IF NOT EXISTS portfolio TEXT;

-- Rows written before books existed sit in book 'main'. They move to the book of the feed that produced
-- them, decided once for the whole database (their equity, cash and daily rows are one account and cannot
-- be split): 'replay' when the screener never stored a price from the exchange (every non-probe market
-- snapshot came from a replay), else 'live'.
WITH b AS (SELECT CASE WHEN EXISTS (SELECT 1 FROM market_snapshots WHERE NOT is_probe)
                        AND NOT EXISTS (SELECT 1 FROM market_snapshots WHERE NOT is_probe AND source = 'binance')
                       THEN 'replay' ELSE 'live' END AS book)
UPDATE signals SET portfolio = CASE WHEN signals.is_probe THEN 'probe' ELSE b.book END FROM b
WHERE signals.portfolio IS NULL;
WITH b AS (SELECT CASE WHEN EXISTS (SELECT 1 FROM market_snapshots WHERE NOT is_probe)
                        AND NOT EXISTS (SELECT 1 FROM market_snapshots WHERE NOT is_probe AND source = 'binance')
                       THEN 'replay' ELSE 'live' END AS book)
UPDATE risk_events SET portfolio = b.book FROM b WHERE risk_events.portfolio = 'main';
WITH b AS (SELECT CASE WHEN EXISTS (SELECT 1 FROM market_snapshots WHERE NOT is_probe)
                        AND NOT EXISTS (SELECT 1 FROM market_snapshots WHERE NOT is_probe AND source = 'binance')
                       THEN 'replay' ELSE 'live' END AS book)
UPDATE orders SET portfolio = b.book FROM b WHERE orders.portfolio = 'main';
WITH b AS (SELECT CASE WHEN EXISTS (SELECT 1 FROM market_snapshots WHERE NOT is_probe)
                        AND NOT EXISTS (SELECT 1 FROM market_snapshots WHERE NOT is_probe AND source = 'binance')
                       THEN 'replay' ELSE 'live' END AS book)
UPDATE trades SET portfolio = b.book FROM b WHERE trades.portfolio = 'main';
WITH b AS (SELECT CASE WHEN EXISTS (SELECT 1 FROM market_snapshots WHERE NOT is_probe)
                        AND NOT EXISTS (SELECT 1 FROM market_snapshots WHERE NOT is_probe AND source = 'binance')
                       THEN 'replay' ELSE 'live' END AS book)
UPDATE positions SET portfolio = b.book FROM b WHERE positions.portfolio = 'main';
WITH b AS (SELECT CASE WHEN EXISTS (SELECT 1 FROM market_snapshots WHERE NOT is_probe)
                        AND NOT EXISTS (SELECT 1 FROM market_snapshots WHERE NOT is_probe AND source = 'binance')
                       THEN 'replay' ELSE 'live' END AS book)
UPDATE portfolio_snapshots SET portfolio = b.book FROM b WHERE portfolio_snapshots.portfolio = 'main';
WITH b AS (SELECT CASE WHEN EXISTS (SELECT 1 FROM market_snapshots WHERE NOT is_probe)
                        AND NOT EXISTS (SELECT 1 FROM market_snapshots WHERE NOT is_probe AND source = 'binance')
                       THEN 'replay' ELSE 'live' END AS book)
UPDATE daily_pnl SET portfolio = b.book FROM b WHERE daily_pnl.portfolio = 'main';

-- No default book: a writer that forgets to say which book a row belongs to fails instead of
-- silently booking into one.
ALTER TABLE signals ALTER COLUMN portfolio SET NOT NULL;
ALTER TABLE signals ALTER COLUMN portfolio DROP DEFAULT;
ALTER TABLE risk_events ALTER COLUMN portfolio DROP DEFAULT;
ALTER TABLE orders ALTER COLUMN portfolio DROP DEFAULT;
ALTER TABLE trades ALTER COLUMN portfolio DROP DEFAULT;
ALTER TABLE positions ALTER COLUMN portfolio DROP DEFAULT;
ALTER TABLE portfolio_snapshots ALTER COLUMN portfolio DROP DEFAULT;
ALTER TABLE daily_pnl ALTER COLUMN portfolio DROP DEFAULT;

-- Probe rows are in book 'probe' and only there, so no view of a feed's book can count them.
ALTER TABLE signals DROP CONSTRAINT IF EXISTS signals_book_check;
ALTER TABLE signals ADD CONSTRAINT signals_book_check
    CHECK (portfolio IN ('live', 'replay', 'probe') AND (portfolio = 'probe') = is_probe);
ALTER TABLE risk_events DROP CONSTRAINT IF EXISTS risk_events_book_check;
ALTER TABLE risk_events ADD CONSTRAINT risk_events_book_check
    CHECK (portfolio IN ('live', 'replay', 'probe') AND (portfolio = 'probe') = is_probe);
ALTER TABLE orders DROP CONSTRAINT IF EXISTS orders_book_check;
ALTER TABLE orders ADD CONSTRAINT orders_book_check
    CHECK (portfolio IN ('live', 'replay', 'probe') AND (portfolio = 'probe') = is_probe);
ALTER TABLE trades DROP CONSTRAINT IF EXISTS trades_book_check;
ALTER TABLE trades ADD CONSTRAINT trades_book_check
    CHECK (portfolio IN ('live', 'replay', 'probe') AND (portfolio = 'probe') = is_probe);
ALTER TABLE positions DROP CONSTRAINT IF EXISTS positions_book_check;
ALTER TABLE positions ADD CONSTRAINT positions_book_check CHECK (portfolio IN ('live', 'replay', 'probe'));
ALTER TABLE portfolio_snapshots DROP CONSTRAINT IF EXISTS portfolio_snapshots_book_check;
ALTER TABLE portfolio_snapshots ADD CONSTRAINT portfolio_snapshots_book_check
    CHECK (portfolio IN ('live', 'replay', 'probe'));
ALTER TABLE daily_pnl DROP CONSTRAINT IF EXISTS daily_pnl_book_check;
ALTER TABLE daily_pnl ADD CONSTRAINT daily_pnl_book_check CHECK (portfolio IN ('live', 'replay', 'probe'));

-- The views read one book at a time: trades and signals by book and time.
CREATE INDEX IF NOT EXISTS trades_book_executed_idx ON trades (portfolio, executed_at DESC);
CREATE INDEX IF NOT EXISTS risk_events_book_created_idx ON risk_events (portfolio, created_at DESC);
