-- The trader's controls (issue 25): each book's trading state — ACTIVE, REDUCING (exits only) or HALTED
-- (no new orders) — as an append-only history with who, when and why. A book's state is its newest row;
-- a book without a row is ACTIVE. The risk manager reads it in the same statement as the rest of a
-- decision. Re-runnable: every statement is a no-op the second time.
CREATE TABLE IF NOT EXISTS book_states (
    id                BIGSERIAL PRIMARY KEY,
    portfolio         TEXT        NOT NULL CHECK (portfolio IN ('live', 'replay')),
    state             TEXT        NOT NULL CHECK (state IN ('ACTIVE', 'REDUCING', 'HALTED')),
    reason            TEXT        NOT NULL CHECK (length(reason) BETWEEN 1 AND 500),
    changed_by        TEXT        NOT NULL,
    changed_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- unfilled (NEW) orders this change cancelled: a halt cancels them in the same transaction
    cancelled_orders  INTEGER     NOT NULL DEFAULT 0 CHECK (cancelled_orders >= 0)
);
-- "the newest row of a book" is an index lookup, on every risk decision
CREATE INDEX IF NOT EXISTS book_states_book_id_idx ON book_states (portfolio, id DESC);

-- A halt cancels the book's unfilled orders: status CANCELLED with the reason in reject_reason
-- (execution fills only NEW orders, so a cancelled one is never filled).
ALTER TABLE orders DROP CONSTRAINT IF EXISTS orders_status_check;
ALTER TABLE orders ADD CONSTRAINT orders_status_check
    CHECK (status IN ('NEW', 'FILLED', 'REJECTED', 'EXPIRED', 'CANCELLED'));
