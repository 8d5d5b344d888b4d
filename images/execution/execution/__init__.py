"""Execution: paper fills of approved orders; trades, positions and portfolio snapshots in Postgres."""
