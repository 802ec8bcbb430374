"""`make demo`: a real MCP SDK client session through `mcpbox run time`.

Lists the sandboxed server's tools, asks it for the current time, shows the
policy refusing a call with a smuggled argument, checks the session log's
seals, and says where the log and the pinned tool definitions are.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import anyio
from mcp import Client
from mcp.client.stdio import StdioServerParameters, get_default_environment, stdio_client
from mcp_types import TextContent

ROOT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def a_keyring() -> Iterator[dict[str, str]]:
    """The desktop's Secret Service if this shell has one; else a private, throwaway GNOME Keyring
    (the test suite's helper), so the demo's session log is sealed as a desktop user's would be."""
    if os.environ.get("DBUS_SESSION_BUS_ADDRESS"):
        yield {"DBUS_SESSION_BUS_ADDRESS": os.environ["DBUS_SESSION_BUS_ADDRESS"]}
        return
    sys.path.insert(0, str(ROOT))
    from tests.keyring_session import start_keyring  # noqa: PLC0415 - tests/ is not installed

    with tempfile.TemporaryDirectory(prefix="mcpbox-demo-kr-") as tmp:
        try:
            session = start_keyring(Path(tmp))
        except (RuntimeError, OSError) as exc:
            print(f"(no keyring for the demo: {exc}; the session log will say it is unsigned)")
            yield {}
            return
        try:
            yield session.env
        finally:
            session.stop()


async def main() -> int:
    with a_keyring() as keyring_env:
        return await demo(keyring_env)


async def demo(keyring_env: dict[str, str]) -> int:
    mcpbox = shutil.which("mcpbox") or str(Path(sys.executable).parent / "mcpbox")
    # Like desktop clients, the SDK passes on only a few variables: the keyring's bus is added.
    env = {**get_default_environment(), **keyring_env}
    with tempfile.TemporaryFile("w+") as errlog:
        params = StdioServerParameters(command=mcpbox, args=["run", "time"], env=env)
        with anyio.fail_after(120):
            async with Client(stdio_client(params, errlog=errlog)) as client:
                print(
                    f"connected to {client.server_info.name if client.server_info else '?'} "
                    f"over MCP {client.session.protocol_version}, sandboxed by mcpbox"
                )
                tools = await client.list_tools()
                print("tools:", ", ".join(tool.name for tool in tools.tools))
                result = await client.call_tool("get_current_time", {"timezone": "UTC"})
                block = result.content[0]
                if not isinstance(block, TextContent):
                    raise SystemExit(f"unexpected answer from the server: {block!r}")
                answer = json.loads(block.text)
                print(f"current time (UTC), from inside the sandbox: {answer['datetime']}")
                refused = await client.call_tool("get_current_time", {"timezone": "UTC", "then": "rm -rf ~"})
                print(f"a call with an argument the tool does not declare: {_text(refused.content)}")
        errlog.seek(0)
        found = re.search(r"log: (\S+\.jsonl)", errlog.read())
    print(f"session log: {found.group(1) if found else '(not reported)'}")
    if found:
        verify = [mcpbox, "logs", "verify", found.group(1), "--json"]
        checked = await anyio.run_process(verify, check=False, env={**os.environ, **keyring_env})
        (report,) = json.loads(checked.stdout)["logs"]
        print(f"`mcpbox logs verify`: {report['status'].upper()}: {report['detail']}")
        print(f"see it: mcpbox logs show {Path(found.group(1)).stem}")
    pins = await anyio.run_process([mcpbox, "pins", "list", "time"], check=False)
    print("tool definitions pinned on first use (`mcpbox pins list time`):")
    print((pins.stdout or pins.stderr).decode().rstrip())
    return 0


def _text(content: Sequence[object]) -> str:
    return " ".join(block.text for block in content if isinstance(block, TextContent))


if __name__ == "__main__":
    sys.exit(anyio.run(main))
