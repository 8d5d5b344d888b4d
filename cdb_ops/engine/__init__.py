"""The container engine: the interface the rest of cdb-ops speaks (`api`), and its docker-py implementation."""
