"""Reading the project: playbooks, `.env`, the desired stack they resolve to, and the state cdb-ops left."""
