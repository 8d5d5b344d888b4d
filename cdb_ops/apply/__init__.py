"""Carrying out a plan: the runner, the phases it sequences, readiness waits, backups, the run lock."""
