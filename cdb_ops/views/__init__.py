"""Read-only views of the stack for people: status rows, merged logs, the Compose export."""
