"""Secrets: kept in the OS keyring, handed to the server at start, masked on the way out."""
