"""The policy chain between client and server: one module per rule, composed in :mod:`.engine`."""

from __future__ import annotations

import threading


def prewarm() -> None:
    """Import and build, in the background, what the first messages need (jsonschema, the Unicode
    tables): the container's start leaves the interpreter idle for hundreds of milliseconds."""

    def work() -> None:
        from mcpbox.policy import arguments, suspicious  # noqa: F401, PLC0415

        suspicious.invisible_code_points()
        suspicious.hidden_pattern()
        suspicious.hidden_bytes()

    threading.Thread(target=work, name="mcpbox-prewarm", daemon=True).start()
