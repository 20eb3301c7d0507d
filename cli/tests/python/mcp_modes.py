"""Drives `wire mcp` with the official MCP Python SDK in its three connection modes.

Usage: mcp_modes.py WIRE_EXE, with WIRE_HOME naming a state root whose session is paired with
the peer WIRE_TEST_PEER (a nickname). For each mode (legacy initialize, auto discovery, pinned
2026-07-28) it lists the tools, calls a fixed set of them, subscribes to the peer's inbox (the
legacy resources/subscribe, or subscriptions/listen on 2026-07-28), prints
{"listening": MODE} and waits for a line on stdin (the Rust test has the peer write a message),
then waits for the pushed update and reads the inbox. One JSON line per mode on stdout; the
Rust test (cli/tests/cli/mcp.rs) compares them.
"""

from __future__ import annotations

import json
import os
import sys
import warnings

import anyio
import mcp_types as types
from mcp.client.client import Client
from mcp.client.stdio import StdioServerParameters

EXE = sys.argv[1]
PEER = os.environ["WIRE_TEST_PEER"]
INBOX = f"wire://inbox/{PEER}"
TIMEOUT_S = 30

warnings.simplefilter("ignore")


def structured(result: types.CallToolResult) -> object:
    return {"is_error": result.is_error, "structured": result.structured_content}


async def wait_for_line() -> None:
    line = await anyio.to_thread.run_sync(sys.stdin.readline)
    if not line:
        raise SystemExit("the test closed stdin early")


async def run_mode(mode: str) -> dict[str, object]:
    params = StdioServerParameters(
        command=EXE,
        args=["mcp"],
        env={"WIRE_HOME": os.environ["WIRE_HOME"], "PATH": os.environ.get("PATH", ""), "LANG": "C.UTF-8"},
    )
    updated = anyio.Event()

    async def on_message(message: object) -> None:
        if isinstance(message, types.ResourceUpdatedNotification) and message.params.uri == INBOX:
            updated.set()

    async with Client(params, mode=mode, message_handler=on_message, cache=None) as client:
        tools = await client.list_tools()
        results = {
            "wire_whoami": (await client.call_tool("wire_whoami", {})).structured_content,
            "wire_pending": structured(await client.call_tool("wire_pending", {})),
            "wire_whois": structured(await client.call_tool("wire_whois", {"name": PEER})),
            "bad_type": structured(await client.call_tool("wire_send", {"peer": PEER, "body": 5})),
        }
        # The session block names the rule, not the mode: identical everywhere.
        resources = await client.list_resources()
        uris = sorted(r.uri for r in resources.resources)
        got_update = False
        if client.protocol_version >= "2026-07-28":
            async with client.listen(resource_subscriptions=[INBOX]) as sub:
                print(json.dumps({"listening": mode}), flush=True)
                await wait_for_line()
                with anyio.fail_after(TIMEOUT_S):
                    async for event in sub:
                        if getattr(event, "uri", None) == INBOX:
                            got_update = True
                            break
        else:
            await client.subscribe_resource(INBOX)
            print(json.dumps({"listening": mode}), flush=True)
            await wait_for_line()
            with anyio.fail_after(TIMEOUT_S):
                await updated.wait()
            got_update = True
        read = await client.read_resource(INBOX)
        text = read.contents[0].text if read.contents else ""
        last = json.loads(text.strip().splitlines()[-1]) if text.strip() else {}
        return {
            "mode": mode,
            "protocol": client.protocol_version,
            "instructions": client.instructions,
            "tools": [t.name for t in tools.tools],
            "results": results,
            "resources": uris,
            "updated": got_update,
            "last_body": last.get("untrusted", {}).get("text"),
        }


async def main() -> None:
    for mode in ["legacy", "auto", "2026-07-28"]:
        out = await run_mode(mode)
        print(json.dumps(out), flush=True)


anyio.run(main)
