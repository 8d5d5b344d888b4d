"""cdb-ops: rebuild, check and report the Claire de Binare paper-trading stack."""

__version__ = "0.1.0"
