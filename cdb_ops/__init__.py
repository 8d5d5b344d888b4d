"""cdb-ops: rebuild, check and report the Claire de Binare paper-trading stack."""

__version__ = "0.1.0"

# the version of every --json document (json_schemas/*.schema.json); bumped only on incompatible changes
JSON_SCHEMA_VERSION = 1
