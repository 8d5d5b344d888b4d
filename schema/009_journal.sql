-- The journal (issue 25 item 5): what was live when. One row per trading-state change, daily-breaker trip,
-- rebuild, rollback and restore, with who, when, why and what was live — per service the container, its
-- image id, its config hash (the label convergence keys on) and when it started. It is the account's
-- history: retention never prunes it, and `cdb-ops restore` carries the rows newer than the dump over.
-- Re-runnable: every statement is a no-op the second time.
CREATE TABLE IF NOT EXISTS journal (
    id            BIGSERIAL PRIMARY KEY,
    at            TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    kind          TEXT        NOT NULL CHECK (kind IN ('state', 'breaker', 'rebuild', 'rollback', 'restore')),
    book          TEXT        CHECK (book IS NULL OR book IN ('live', 'replay')),
    who           TEXT        NOT NULL CHECK (length(who) BETWEEN 1 AND 200),
    why           TEXT        NOT NULL CHECK (length(why) BETWEEN 1 AND 1000),
    -- {"<service>": {"container", "container_id", "image_id", "image", "config_hash", "started_at"}}:
    -- read from the engine by cdb-ops (rebuild, rollback, restore); a state or breaker row carries the
    -- newest such set, and live_seen_at says when that set was read. NULL: not known (engine unreachable).
    live          JSONB,
    live_seen_at  TIMESTAMPTZ,
    details       JSONB       NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX IF NOT EXISTS journal_at_idx ON journal (at);

-- The newest set of live containers the journal knows (for the rows the database writes itself).
CREATE OR REPLACE FUNCTION journal_latest_live(OUT live JSONB, OUT seen_at TIMESTAMPTZ) LANGUAGE sql STABLE AS $$
    SELECT live, coalesce(live_seen_at, at) FROM journal WHERE live IS NOT NULL ORDER BY id DESC LIMIT 1
$$;

-- Every trading-state change, whoever writes it (cdb-ops trading, a flatten, psql): journalled in the same
-- transaction, so a state change without its journal row cannot exist.
CREATE OR REPLACE FUNCTION journal_book_state() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO journal (at, kind, book, who, why, live, live_seen_at, details)
        SELECT NEW.changed_at, 'state', NEW.portfolio, NEW.changed_by, NEW.reason, l.live, l.seen_at,
               jsonb_build_object('state', NEW.state, 'book_state_id', NEW.id, 'cancelled_orders', 0)
        FROM journal_latest_live() l;
    ELSE  -- a halt counts the orders it cancelled after its row is in (trading_state.change_state)
        UPDATE journal SET details = details || jsonb_build_object('cancelled_orders', NEW.cancelled_orders)
        WHERE kind = 'state' AND (details ->> 'book_state_id')::bigint = NEW.id;
    END IF;
    RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS book_states_journal ON book_states;
CREATE TRIGGER book_states_journal AFTER INSERT OR UPDATE OF cancelled_orders ON book_states
    FOR EACH ROW EXECUTE FUNCTION journal_book_state();

-- The daily breaker is the risk manager's own state change (REDUCING until the next UTC day): journalled
-- when today's row latches it, so the risk manager needs no code for it.
CREATE OR REPLACE FUNCTION journal_breaker() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.breaker_tripped AND NEW.portfolio IN ('live', 'replay')
       AND (TG_OP = 'INSERT' OR NOT OLD.breaker_tripped) THEN
        INSERT INTO journal (kind, book, who, why, live, live_seen_at, details)
        SELECT 'breaker', NEW.portfolio, 'risk manager (daily drawdown breaker)',
               format('daily drawdown breaker tripped (%s %% below the day''s start equity): REDUCING until %s',
                      round(100 * (NEW.start_equity - NEW.low_equity) / nullif(NEW.start_equity, 0), 2),
                      to_char(NEW.day + 1, 'YYYY-MM-DD') || ' 00:00 UTC'),
               l.live, l.seen_at,
               jsonb_build_object('state', 'REDUCING', 'day', NEW.day,
                                  'until', (NEW.day + 1)::timestamp AT TIME ZONE 'UTC')
        FROM journal_latest_live() l;
    END IF;
    RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS daily_pnl_breaker_journal ON daily_pnl;
CREATE TRIGGER daily_pnl_breaker_journal AFTER INSERT OR UPDATE OF breaker_tripped ON daily_pnl
    FOR EACH ROW WHEN (NEW.breaker_tripped) EXECUTE FUNCTION journal_breaker();
