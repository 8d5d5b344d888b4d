"""Shared library of the CDB trading services (config, logs, health, metrics, streams, Postgres).

Kept import-free on purpose: `python3 -m cdb_common.healthcheck` must stay tiny.
"""
