-- Orders that never fill expire (risk manager, ORDER_TTL_SECONDS): status EXPIRED with the reason in
-- reject_reason. Re-runnable: the constraint is dropped before it is added again.
ALTER TABLE orders DROP CONSTRAINT IF EXISTS orders_status_check;
ALTER TABLE orders ADD CONSTRAINT orders_status_check
    CHECK (status IN ('NEW', 'FILLED', 'REJECTED', 'EXPIRED'));
-- The expiry sweep looks for old NEW orders; the signal engine restores its cooldowns from the
-- latest signal per symbol and side.
CREATE INDEX IF NOT EXISTS orders_new_created_idx ON orders (created_at) WHERE status = 'NEW';
CREATE INDEX IF NOT EXISTS signals_symbol_side_tick_idx ON signals (symbol, side, tick_time DESC);
