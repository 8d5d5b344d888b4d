"""`python3 -m backup`: take the owner of the backups folder, then run the service.

The process starts as root (no other capability than SETUID/SETGID, see the playbook) only to become
the user who owns the project's backups/ (a bind mount): its files then belong to the person who runs
cdb-ops, as the ones `cdb-ops backup` writes, and a 0700 folder stays writable for both."""

import os

from cdb_common.runtime import main

from .service import BackupService

if os.getuid() == 0:
    st = os.stat(os.environ.get("BACKUP_DIR", "/backups"))
    os.setgroups([])
    os.setgid(st.st_gid)
    os.setuid(st.st_uid)  # for uid 0 (a root-owned project) this keeps root, whose capabilities are dropped
os.umask(0o077)
main(BackupService, BackupService.name, BackupService.default_port)
