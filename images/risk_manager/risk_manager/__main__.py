"""`python3 -m risk_manager`."""

from cdb_common.runtime import main

from .service import RiskService

main(RiskService, RiskService.name, RiskService.default_port)
