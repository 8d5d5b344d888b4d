"""The backup service: scheduled, verified backups and restore drills (docs/backups.md)."""
