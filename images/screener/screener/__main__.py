"""`python3 -m screener`."""

from cdb_common.runtime import main

from .service import ScreenerService

main(ScreenerService, ScreenerService.name, ScreenerService.default_port)
