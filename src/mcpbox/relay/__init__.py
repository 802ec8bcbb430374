"""The stdio relay between an MCP client and a sandboxed server."""
