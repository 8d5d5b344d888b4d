"""`python3 -m notifier`."""

from cdb_common.runtime import main

from .service import NotifierService

main(NotifierService, NotifierService.name, NotifierService.default_port)
