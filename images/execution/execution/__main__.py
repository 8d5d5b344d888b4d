"""`python3 -m execution`."""

from cdb_common.runtime import main

from .service import ExecutionService

main(ExecutionService, ExecutionService.name, ExecutionService.default_port)
