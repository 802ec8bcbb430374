"""How a secret reaches the server without passing through anything that keeps it.

Environment variables given to the engine at create time are stored in the
container's config and shown by ``docker inspect`` to anyone with the Docker
socket, for as long as the container exists. So the container is created with
no secret at all, and its entrypoint is a POSIX ``sh`` script (the shim): it
reads one short frame from stdin, which mcpbox writes first over the attach
connection, exports each value (or writes it to a file on a tmpfs), and execs
the server, which then reads the same stdin as MCP's transport. The frame
travels only through a socket and a pipe: no argv, no env of any host process,
no file, no engine config, and no log (the container's log driver is ``none``).

The shim reads with the shell's ``read`` builtin, which takes one byte at a
time from a pipe, so not a byte of the client's traffic is consumed before the
exec. Values are sent as ``\\ooo`` octal escapes that the ``printf`` builtin
decodes: any byte survives, and the shim checks that nothing but escapes
arrived, so a value can never be run as shell code.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from mcpbox.profile.model import SECRETS_DIR

if TYPE_CHECKING:
    from mcpbox.secrets.store import Resolved

MAGIC = "mcpbox-secrets 1"
SHIM_NAME = "mcpbox-secrets"  # $0 of the shim: what `ps` in the container shows until the exec
# Variables are prefixed so they cannot collide with the image's; all are unset before the exec,
# because a shell exports any variable it inherited, and the server must not get an encoded copy.
SHIM = f"""umask 077
fail() {{ echo "mcpbox: $1; the server was not started" >&2; exit 125; }}
IFS= read -r mcpbox_l || fail "no secret hand-off arrived on stdin"
[ "$mcpbox_l" = "{MAGIC}" ] || fail "the secret hand-off was garbled"
while IFS= read -r mcpbox_l; do
  case $mcpbox_l in
    end) unset mcpbox_l mcpbox_k mcpbox_n mcpbox_v; exec "$@" ;;
    env\\ *|file\\ *) ;;
    *) fail "the secret hand-off was garbled" ;;
  esac
  mcpbox_k=${{mcpbox_l%% *}}; mcpbox_l=${{mcpbox_l#* }}
  mcpbox_n=${{mcpbox_l%% *}}; mcpbox_l=${{mcpbox_l#* }}
  case $mcpbox_n in ''|[0-9]*|*[!A-Za-z0-9_]*) fail "a secret had a bad variable name" ;; esac
  case $mcpbox_l in ''|*[!\\\\0-7]*) fail "a secret was not encoded as expected" ;; esac
  if [ "$mcpbox_k" = env ]; then
    mcpbox_v=$(printf "${{mcpbox_l}}x") || fail "a secret could not be decoded"
    export "$mcpbox_n=${{mcpbox_v%x}}"
  else
    printf "$mcpbox_l" > "{SECRETS_DIR}/$mcpbox_n" || fail "cannot write {SECRETS_DIR}/$mcpbox_n"
    export "${{mcpbox_n}}_FILE={SECRETS_DIR}/$mcpbox_n"
  fi
done
fail "the secret hand-off ended early"
"""


def entrypoint() -> list[str]:
    """The container's entrypoint when a profile has secrets; the server's argv follows as "$@"."""
    return ["/bin/sh", "-c", SHIM, SHIM_NAME]


def _octal(value: bytes) -> str:
    return "".join(f"\\{byte:03o}" for byte in value)


def frame(secrets: Sequence[Resolved]) -> bytes:
    """What mcpbox writes to the container's stdin before any byte from the client."""
    lines = [MAGIC]
    for item in secrets:
        kind = "file" if item.ref.as_file else "env"
        lines.append(f"{kind} {item.ref.var} {_octal(item.value)}")
    lines.append("end")
    return ("\n".join(lines) + "\n").encode("ascii")
