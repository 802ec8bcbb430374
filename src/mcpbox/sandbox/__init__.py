"""The container side: the spec a profile yields, the engine, owners and the guardian."""
