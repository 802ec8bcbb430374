"""Desktop MCP clients' config files: where they are, and rewriting their stdio servers to run under mcpbox."""
