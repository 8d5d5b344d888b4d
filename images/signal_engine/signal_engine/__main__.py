"""`python3 -m signal_engine`."""

from cdb_common.runtime import main

from .service import SignalService

main(SignalService, SignalService.name, SignalService.default_port)
