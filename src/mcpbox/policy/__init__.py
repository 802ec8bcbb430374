"""The policy chain between client and server: one module per rule, composed in :mod:`.engine`."""
