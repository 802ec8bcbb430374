"""Session logs: one JSONL file per `mcpbox run`."""
