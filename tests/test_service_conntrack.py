"""``/api/conntrack`` against ``conntrack -L -o xml`` on real TCP and UDP
flows between two namespaces (seeded, seed printed on failure), kept live
by the conntrack monitor, with SSE events as flows come and go; the view's
cap and bad queries.

The view's ``timeout`` (and counters, left off here) are as of an entry's
last event: the kernel refreshes them on packets without telling anyone,
so they are not compared."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # examples/ is not an installed package

from examples.netstate_service import ConntrackView, NetStateService, Settings, create_app, rtnl_source  # noqa: E402
from examples.netstate_service.sse_client import read_events  # noqa: E402
from tests.conftest import ip, run  # noqa: E402
from tests.test_conntrack import A_V6, B_V6, _enable_conntrack, conntrack_xml, traffic  # noqa: E402

pytestmark = pytest.mark.integration

_MOVING = ("timeout", "use")


@pytest.fixture
def tracked(netns_pair: tuple[str, str]) -> Iterator[tuple[str, str]]:
    first, second = netns_pair
    ip(first, "addr", "add", f"{A_V6}/64", "dev", "veth0", "nodad")
    ip(second, "addr", "add", f"{B_V6}/64", "dev", "veth1", "nodad")
    _enable_conntrack(first)
    yield first, second


async def _serving(netns: str, limit: int = 10_000) -> AsyncIterator[tuple[TestClient, ConntrackView]]:
    service = NetStateService(lambda: rtnl_source(netns=netns, neighbours=False))
    view = ConntrackView(service, netns, limit=limit)
    async with TestClient(TestServer(create_app(service, Settings(ping_interval=1.0), None, None, view))) as client:
        assert await view.wait_ready(10)
        yield client, view


@pytest.fixture
async def served(tracked: tuple[str, str]) -> AsyncIterator[tuple[TestClient, ConntrackView, tuple[str, str]]]:
    async for client, view in _serving(tracked[0]):
        yield client, view, tracked


async def get(client: TestClient, query: str = "") -> dict[str, Any]:
    async with client.get(f"/api/conntrack{query}") as response:
        assert response.status == 200, await response.text()
        return await response.json()  # type: ignore[no-any-return]


def comparable(item: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in item.items() if key not in _MOVING}


async def until_same_ids(client: TestClient, netns: str, query: str, tool_args: tuple[str, ...], seed: int) -> tuple[dict[str, Any], dict[int, dict[str, Any]]]:
    deadline = time.monotonic() + 10
    while True:
        body, tool = await get(client, query), conntrack_xml(netns, *tool_args)
        if sorted(item["id"] for item in body["entries"]) == sorted(tool):
            return body, tool
        if time.monotonic() > deadline:
            raise AssertionError(f"seed {seed}: /api/conntrack{query} has {len(body['entries'])} entries, conntrack -L {' '.join(tool_args)} {len(tool)}")
        await asyncio.sleep(0.1)


def assert_same_entries(ours: list[dict[str, Any]], tool: dict[int, dict[str, Any]], seed: int) -> None:
    for item in ours:
        expected = comparable(tool[item["id"]])
        got = {key: item.get(key) for key in expected}
        assert got == expected, f"seed {seed}: entry {item['id']} differs\nours {item}\ntool {tool[item['id']]}"


@pytest.mark.parametrize("seed", [5, 1789])
async def test_served_entries_and_summary_equal_conntrack_tool(served, seed: int) -> None:
    client, _view, pair = served
    first = pair[0]
    with traffic(pair, seed, 30) as plan:
        body, tool = await until_same_ids(client, first, "?limit=100000", (), seed)
        assert len(tool) >= len(plan), f"seed {seed}: {len(tool)} entries for {len(plan)} flows"
        assert_same_entries(body["entries"], tool, seed)
        summary = body["summary"]
        assert summary["count"] == body["matched"] == len(tool)
        protocols: dict[str, int] = {}
        states: dict[str, int] = {}
        for item in tool.values():
            protocols[item["protocol"]] = protocols.get(item["protocol"], 0) + 1
            if "state" in item:
                states[item["state"]] = states.get(item["state"], 0) + 1
        assert (summary["protocols"], summary["states"]) == (protocols, states), f"seed {seed}"
        assert summary["table_entries"] == len(tool) and summary["truncated"] is False
        # Filters, each against the tool's own.
        for query, tool_args in (
            ("?protocol=tcp&state=ESTABLISHED", ("-p", "tcp", "--state", "ESTABLISHED")),
            ("?family=ipv6&protocol=udp", ("-f", "ipv6", "-p", "udp")),
            ("?family=ipv4&dst=10.99.0.2", ("-f", "ipv4", "-d", "10.99.0.2")),
        ):
            body, tool = await until_same_ids(client, first, query, tool_args, seed)
            assert_same_entries(body["entries"], tool, seed)
        one = next(iter(tool.values()))
        body = await get(client, f"?protocol={one['protocol']}&dport={one['original']['dport']}&src={one['original']['src']}")
        assert [item["id"] for item in body["entries"]] == [one["id"]], f"seed {seed}"
        body = await get(client, "?limit=3")
        assert len(body["entries"]) == 3 and body["matched"] == body["summary"]["count"]


async def _send_udp(netns: str, host: str, port: int) -> float:
    """Send one datagram from ``netns``; the CLOCK_MONOTONIC time it was
    sent (system-wide, so comparable with this process's time.monotonic())."""
    family = "AF_INET6" if ":" in host else "AF_INET"
    script = f"import socket, time; s = socket.socket(socket.{family}, socket.SOCK_DGRAM); t = time.monotonic(); s.sendto(b'x', ({host!r}, {port})); print(t)"
    process = await asyncio.create_subprocess_exec("ip", "netns", "exec", netns, sys.executable, "-c", script, stdout=asyncio.subprocess.PIPE)
    async with asyncio.timeout(10):
        out, _ = await process.communicate()
    assert process.returncode == 0
    return float(out)


async def test_an_sse_client_sees_a_flow_come_and_go(served) -> None:
    client, view, (first, _second) = served
    port = 40123
    async with client.get("/api/events") as response:
        events = read_events(response)
        async with asyncio.timeout(10):
            resync = await anext(events)
        assert resync.event == "resync" and "conntrack" in resync.json()["state"]
        sender = asyncio.create_task(_send_udp(first, "10.99.0.2", port))
        async with asyncio.timeout(10):
            async for event in events:
                change = event.json()
                if change["kind"] == "conntrack" and change["obj"]["original"]["dport"] == port:
                    break
        received = time.monotonic()
        latency = received - await sender
        assert change["action"] == "new" and change["obj"]["protocol"] == "udp"
        assert change["obj"]["flags"] == ["UNREPLIED"]
        print(f"new-flow event seen by the SSE client {latency * 1000:.1f} ms after the datagram was sent")
        body = await get(client, f"?dport={port}")
        assert len(body["entries"]) == 1
        run("ip", "netns", "exec", first, "conntrack", "-D", "-p", "udp", "--dport", str(port))
        async with asyncio.timeout(10):
            async for event in events:
                gone = event.json()
                if gone["kind"] == "conntrack" and gone["action"] == "del":
                    break
        assert gone["key"] == change["key"]
    body = await get(client, f"?dport={port}")
    assert body["entries"] == [] and body["matched"] == 0
    assert conntrack_xml(first, "-p", "udp", "--dport", str(port)) == {}
    assert view.status()["last_error"] is None


async def test_the_view_holds_at_most_its_limit(tracked) -> None:
    first = tracked[0]
    with traffic(tracked, 99, 20):
        tool = conntrack_xml(first)
        async for client, view in _serving(first, limit=5):
            body = await get(client, "?limit=100")
            summary = body["summary"]
            assert summary["count"] == len(body["entries"]) == len(view.flows) == 5
            # turned_away counts events: an update of a turned-away entry counts again.
            assert summary["turned_away"] >= len(tool) - 5 and summary["truncated"] is True
            assert summary["table_entries"] == len(tool)
            # What is held is what the kernel has.
            assert {item["id"] for item in body["entries"]} <= set(tool)


_BAD_QUERIES = ("?limit=abc", "?limit=-1", "?limit=100001", "?protocol=tcpx", "?state=SLEEPING", "?src=10.0.0.300", "?sport=70000",
                "?family=ipx", "?colour=red", "?limit=1&limit=2", "?mark=%D9%A3", "?protocol=256")  # fmt: skip


async def test_bad_queries_get_400(served) -> None:
    client, _view, _pair = served
    for query in _BAD_QUERIES:
        async with client.get(f"/api/conntrack{query}") as response:
            assert response.status == 400, query
            assert "error" in await response.json()


async def test_without_a_view_the_route_says_it_is_not_enabled(netns) -> None:
    service = NetStateService(lambda: rtnl_source(netns=netns))
    async with TestClient(TestServer(create_app(service, Settings()))) as client:
        async with client.get("/api/conntrack") as response:
            assert response.status == 404
            assert "not enabled" in (await response.json())["error"]



async def test_the_page_shows_the_summary_live(tracked) -> None:
    from tests.test_service_browser import Browser, start_server

    first = tracked[0]
    service = NetStateService(lambda: rtnl_source(netns=first, neighbours=False))
    view = ConntrackView(service, first)
    runner, url = await start_server(create_app(service, Settings(ping_interval=2.0), None, None, view))
    try:
        async with Browser() as browser:
            page = await browser.page()
            await page.call("Page.navigate", url=url)
            await page.wait_for("document.getElementById('connection')?.dataset.state === 'live'", 30, "the stream is not live")
            await page.evaluate("window.__before_change = 'same page'; true")
            before = len(conntrack_xml(first))
            await _send_udp(first, "10.99.0.2", 40321)
            await _send_udp(first, B_V6, 40322)
            expected = before + 2
            await page.wait_for(f"document.getElementById('conntrack-count').textContent === '{expected}'", 10, f"the count did not reach {expected}")
            row = await page.wait_for(
                "(() => { const r = document.querySelector('#conntrack-summary tr[data-key=\"protocol:udp\"]'); return r && r.innerText; })()",
                10,
                "no udp row",
            )
            assert row.split() == ["protocol", "udp", "2"]
            assert len(conntrack_xml(first)) == expected
            run("ip", "netns", "exec", first, "conntrack", "-D", "-p", "udp", "--dport", "40321")
            await page.wait_for(f"document.getElementById('conntrack-count').textContent === '{expected - 1}'", 10, "the deleted flow stayed")
            assert await page.evaluate("window.__before_change") == "same page"
    finally:
        await runner.cleanup()


async def test_an_unreadable_table_is_a_503_that_names_the_error(netns) -> None:
    service = NetStateService(lambda: rtnl_source(netns=netns, neighbours=False))
    view = ConntrackView(service, "/nonexistent/netns-path", retry_delay=0.05, max_retry_delay=0.2)
    async with TestClient(TestServer(create_app(service, Settings(ready_timeout=0.5), None, None, view))) as client:
        async with client.get("/api/conntrack") as response:
            assert response.status == 503
            assert "cannot be read yet" in (await response.json())["error"]
        async with client.get("/api/status") as response:
            status = (await response.json())["conntrack"]
        assert status["ready"] is False and status["last_error"]
