"""The command line: one module per command (or group), a session built once per invocation."""

from cdb_ops.cli.app import main

__all__ = ["main"]
