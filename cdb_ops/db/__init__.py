"""The stack's database from the host: versioned migrations and the `ops_runs` record."""
