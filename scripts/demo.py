"""`make demo`: a real MCP SDK client session through `mcpbox run time`.

Lists the sandboxed server's tools, asks it for the current time, shows the
policy refusing a call with a smuggled argument, and says where the session
log and the pinned tool definitions are.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import anyio
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp_types import TextContent


async def main() -> int:
    mcpbox = shutil.which("mcpbox") or str(Path(sys.executable).parent / "mcpbox")
    with tempfile.TemporaryFile("w+") as errlog:
        params = StdioServerParameters(command=mcpbox, args=["run", "time"])
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
        checked = await anyio.run_process([mcpbox, "logs", "verify", found.group(1), "--json"], check=False)
        (report,) = json.loads(checked.stdout)["logs"]
        state = "intact" if report["ok"] else f"ALTERED: {report['problem']}"
        print(f"`mcpbox logs verify`: hash chain {state} ({report['records']} records)")
    pins = await anyio.run_process([mcpbox, "pins", "list", "time"], check=False)
    print("tool definitions pinned on first use (`mcpbox pins list time`):")
    print((pins.stdout or pins.stderr).decode().rstrip())
    return 0


def _text(content: Sequence[object]) -> str:
    return " ".join(block.text for block in content if isinstance(block, TextContent))


if __name__ == "__main__":
    sys.exit(anyio.run(main))
