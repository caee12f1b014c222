"""Drives `ferry mcp` with the official MCP Python SDK (PyPI `mcp`), as an assistant's
client would: initialise, list the tools, call each, read the status resource, and send bad
input. Run by `up.rs`'s `mcp_*` test against a `ferry up` on the fake cluster.

Usage: mcp_client.py FERRY CONFIG SECRET... (exits non-zero, saying what failed; SECRET are
strings of the kubeconfig that no answer may contain)
"""

import asyncio
import json
import os
import sys

from mcp import ClientSession, StdioServerParameters
from mcp.shared.exceptions import MCPError
from mcp.client.stdio import stdio_client

FERRY, CONFIG, SECRETS = sys.argv[1], sys.argv[2], sys.argv[3:]
EVERYTHING_SAID = []

TOOLS = {
    "list_forwards",
    "enable_forward",
    "disable_forward",
    "add_forward",
    "remove_forward",
    "test_forward",
    "discover_forwards",
}


def check(ok, what):
    if not ok:
        raise AssertionError(what)


async def call(session, tool, args, error=False):
    """Calls `tool`; its text, checked to be an error or not as `error` says."""
    result = await session.call_tool(tool, args)
    said = "\n".join(c.text for c in result.content)
    EVERYTHING_SAID.append(said)
    check(
        bool(result.is_error) == error,
        f"{tool}({args}): is_error={result.is_error}, wanted {error}: {said}",
    )
    return said


async def forwards(session):
    status = json.loads(await call(session, "list_forwards", {}))
    return status, {f["name"]: f for f in status["forwards"]}


async def main():
    params = StdioServerParameters(
        command=FERRY, args=["mcp", "-c", CONFIG], env=dict(os.environ)
    )
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            check(init.server_info.name == "ferry", f"server info: {init.server_info}")
            check(init.capabilities.tools is not None, "no tools capability")
            check(init.capabilities.resources is not None, "no resources capability")

            tools = {t.name: t for t in (await session.list_tools()).tools}
            check(set(tools) == TOOLS, f"tools: {sorted(tools)}")
            for name in ("enable_forward", "disable_forward", "remove_forward", "test_forward"):
                schema = tools[name].input_schema
                check(schema.get("required") == ["name"], f"{name}'s schema: {schema}")
            check(
                tools["add_forward"].input_schema.get("required") == ["line"],
                f"add_forward's schema: {tools['add_forward'].input_schema}",
            )
            for t in tools.values():
                check(t.description, f"{t.name} has no description")

            # What runs: `ferry up`, with echo active and the disabled one off.
            status, by_name = await forwards(session)
            check(status["runner"]["kind"] == "`ferry up`", f"runner: {status['runner']}")
            check(by_name["echo"]["state"] == "active", f"echo: {by_name['echo']}")
            check(by_name["off"]["state"] == "disabled", f"off: {by_name['off']}")
            check(by_name["echo"]["local"].startswith("127.0.0.1:"), f"echo: {by_name['echo']}")

            tested = json.loads(await call(session, "test_forward", {"name": "echo"}))
            check(tested["reachable"] is True, f"test echo: {tested}")
            check(tested["local"] == by_name["echo"]["local"], f"test echo: {tested}")

            # Disable, then enable: the running `ferry up` applies both.
            said = await call(session, "disable_forward", {"name": "echo"})
            check("Disabled echo." in said and "echo: disabled" in said, said)
            _, by_name = await forwards(session)
            check(by_name["echo"]["enabled"] is False, f"echo: {by_name['echo']}")
            said = await call(session, "test_forward", {"name": "echo"}, error=True)
            check("disabled" in said and "listens nowhere" in said, said)
            said = await call(session, "enable_forward", {"name": "echo"})
            check("Enabled echo." in said and "echo: active" in said, said)

            # Add (pinned to kubectl's current context), see it run, remove it.
            said = await call(
                session, "add_forward", {"line": "svc/web 0:80 -n demo", "name": "web"}
            )
            check("added web" in said and "web: active" in said, said)
            check("saved with `ferry-fake`" in said, said)
            _, by_name = await forwards(session)
            check(by_name["web"]["context"] == "ferry-fake", f"web: {by_name['web']}")
            check(by_name["web"]["state"] == "active", f"web: {by_name['web']}")
            said = await call(session, "remove_forward", {"name": "web"})
            check("Removed web." in said and "no longer runs web" in said, said)
            _, by_name = await forwards(session)
            check("web" not in by_name, f"web still listed: {list(by_name)}")

            # What the cluster declares (the fake's demo objects), marked with what we have.
            found = json.loads(await call(session, "discover_forwards", {"namespace": "demo"}))
            check(found["context"] == "ferry-fake", f"discover: {found}")
            declared = {d["name"]: d for d in found["declared"]}
            check(set(declared) == {"web", "web-pod", "echo", "db-pg"}, f"declared: {sorted(declared)}")
            check(declared["web-pod"]["declared_by"] == "Ferry", f"{declared['web-pod']}")
            check(
                declared["web-pod"]["add_line"] == "deployment/web 18090:http -n demo --context ferry-fake",
                f"{declared['web-pod']}",
            )
            check(declared["echo"]["add_line"] is None, "kftray's pods' port has no kubectl line")
            said = await call(
                session, "discover_forwards", {"namespace": "demo", "all_namespaces": True}, error=True
            )
            check(said.startswith("namespace: "), said)

            # Bad input: an error the user can act on, naming the argument; nothing changes.
            with open(CONFIG) as f:
                before = f.read()
            said = await call(session, "enable_forward", {"name": "ghost"}, error=True)
            check(said.startswith("name: ") and "ghost" in said, said)
            said = await call(session, "remove_forward", {"name": "ghost"}, error=True)
            check(said.startswith("name: "), said)
            said = await call(session, "add_forward", {"line": " "}, error=True)
            check(said.startswith("line: "), said)
            said = await call(session, "add_forward", {"line": "svc/web 70000:80 -n demo"}, error=True)
            check("70000" in said, said)
            said = await call(
                session, "add_forward", {"line": "svc/web 0:80 0:81 -n demo", "name": "w"}, error=True
            )
            check("--name" in said or "name" in said, said)
            said = await call(session, "enable_forward", {}, error=True)
            check("name" in said, said)
            said = await call(session, "test_forward", {"name": "ghost"}, error=True)
            check(said.startswith("name: "), said)
            with open(CONFIG) as f:
                check(f.read() == before, "a refused call changed the config")

            # The live status resource.
            resources = (await session.list_resources()).resources
            check([str(r.uri) for r in resources] == ["ferry://status"], f"resources: {resources}")
            read = await session.read_resource("ferry://status")
            body = json.loads(read.contents[0].text)
            EVERYTHING_SAID.append(read.contents[0].text)
            check(read.contents[0].mime_type == "application/json", f"{read.contents[0]}")
            check(
                {f["name"]: f["state"] for f in body["forwards"]} == {"echo": "active", "off": "disabled"},
                f"status resource: {body}",
            )
            try:
                await session.read_resource("ferry://nothing")
                check(False, "an unknown resource was read")
            except MCPError as e:
                check("uri" in str(e), f"unknown resource: {e}")

    for secret in SECRETS:
        for said in EVERYTHING_SAID:
            check(secret not in said, "an answer holds a credential of the kubeconfig")
    print("mcp client: every check passed")


asyncio.run(main())
