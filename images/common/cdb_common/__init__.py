"""Shared library of the CDB trading services (config, logs, health, metrics, streams, Postgres).

Kept import-free on purpose: cdb-ops imports two of its modules (migrations, envrules) on the host.
The images' Docker health probe is `healthcheck.sh` (bash, no Python start).
"""
