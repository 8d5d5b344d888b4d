-- Retention of the time-series tables (cdb_common/retention.py, docs/retention.md).
-- Re-runnable: every statement is a no-op the second time.

-- A book's newest snapshot, found by an index: retention keeps it whatever its age (execution and the
-- risk manager read cash and peak equity from it), and the readers' `WHERE portfolio = ... ORDER BY id
-- DESC LIMIT 1` no longer walks the whole primary key backwards for a book that has been idle.
CREATE INDEX IF NOT EXISTS portfolio_snapshots_book_id_idx ON portfolio_snapshots (portfolio, id DESC);

-- Retention deletes a small slice every pass; by default autovacuum waits until a fifth of the table is
-- dead before it hands the space back, so a table would swell by ~20 % between vacuums. A slice of 2 %
-- (5 % for the small tables) keeps the size within a few percent of its level.
ALTER TABLE market_snapshots SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02);
ALTER TABLE portfolio_snapshots SET (autovacuum_vacuum_scale_factor = 0.05);
ALTER TABLE ops_runs SET (autovacuum_vacuum_scale_factor = 0.05);
