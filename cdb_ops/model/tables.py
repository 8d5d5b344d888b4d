"""The tables the trading stack's schema must have (validate, backups and the schema repair agree)."""

from __future__ import annotations

EXPECTED_TABLES = (
    "market_snapshots",
    "signals",
    "risk_events",
    "orders",
    "trades",
    "positions",
    "portfolio_snapshots",
    "daily_pnl",
    "ops_runs",
    "book_states",  # each book's trading state (migration 008): the risk manager reads it with every decision
    "journal",  # what was live when: state changes, breaker trips, rebuilds, rollbacks, restores (migration 009)
)
