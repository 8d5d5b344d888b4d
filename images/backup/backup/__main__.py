"""`python3 -m backup`. The playbook runs it as the user who owns the project's backups/ (see
`${CDB_OUTPUT_USER}` in docs/backups.md): every file it writes is private to that user."""

import os

from cdb_common.runtime import main

from .service import BackupService

os.umask(0o077)  # pg_dump's staging file too, before the seal sets 0600
main(BackupService, BackupService.name, BackupService.default_port)
