"""`python3 -m market_replay`."""

from cdb_common.runtime import main

from .service import ReplayService

main(ReplayService, ReplayService.name, ReplayService.default_port)
