"""The netstate service against the real kernel: rtnl.monitor(resync=True)
in a throwaway namespace, compared with ``ip -j``; and the one-command
entry point (``python -m examples.netstate_service``) end to end."""

from __future__ import annotations

import asyncio
import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from conftest import ip

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # examples/ is not an installed package

from examples.netstate_service import NetStateService, Settings, create_app, rtnl_source  # noqa: E402
from examples.netstate_service.sse_client import read_events  # noqa: E402


def build_namespace(netns: str) -> None:
    """Links of several kinds, v4 and v6 addresses, routes in main and table 100, a neighbour."""
    # veth pairs: the CI kernel may lack the dummy driver
    ip(netns, "link", "add", "vc0", "type", "veth", "peer", "name", "vc1")
    ip(netns, "link", "set", "vc0", "mtu", "1400", "up")
    ip(netns, "link", "set", "vc1", "up")
    ip(netns, "addr", "add", "10.50.0.1/24", "dev", "vc0")
    ip(netns, "addr", "add", "fd50::1/64", "dev", "vc0", "nodad")
    ip(netns, "link", "add", "veth-a", "type", "veth", "peer", "name", "veth-b")
    ip(netns, "link", "set", "veth-a", "up")
    ip(netns, "link", "set", "veth-b", "up")
    ip(netns, "addr", "add", "10.51.0.1/24", "dev", "veth-a")
    ip(netns, "route", "add", "10.60.0.0/16", "via", "10.50.0.2", "dev", "vc0", "metric", "50")
    ip(netns, "route", "add", "10.61.0.0/16", "dev", "veth-a", "table", "100")
    ip(netns, "-6", "route", "add", "fd60::/48", "via", "fd50::2", "dev", "vc0")
    ip(netns, "neigh", "add", "10.50.0.2", "lladdr", "02:00:00:00:00:02", "dev", "vc0", "nud", "permanent")


def ip_json(netns: str, *args: str) -> Any:
    return json.loads(ip(netns, "-j", *args).stdout or "[]")


def flatten_addresses(links: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"ifindex": link["ifindex"], "ifname": link["ifname"], **info} for link in links for info in link.get("addr_info", ())]


def mismatches(ours: list[dict[str, Any]], theirs: list[dict[str, Any]], identity: tuple[str, ...]) -> list[str]:
    """Differences between our objects and ip's, matched by ``identity``
    fields, comparing every key we serve that ip also prints."""
    problems = []
    index = {tuple(item.get(name) for name in identity): item for item in theirs}
    ours_index = {tuple(item.get(name) for name in identity): item for item in ours}
    for missing in index.keys() - ours_index.keys():
        problems.append(f"missing {missing}")
    for extra in ours_index.keys() - index.keys():
        problems.append(f"extra {extra}")
    for key in index.keys() & ours_index.keys():
        for name, value in ours_index[key].items():
            if name in index[key] and index[key][name] != value:
                problems.append(f"{key} {name}: ours {value!r}, ip {index[key][name]!r}")
    return problems


async def until_consistent(fetch, expected, identity: tuple[str, ...], timeout: float = 5.0) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    """Compare until ours matches ip (the kernel may still be settling,
    e.g. IPv6 link-local addresses), then return ours; bounded."""
    deadline = time.monotonic() + timeout
    while True:
        ours, theirs = await fetch(), expected()
        problems = mismatches(ours, theirs, identity)
        if not problems:
            return ours
        if time.monotonic() > deadline:
            raise AssertionError("\n".join(problems))
        await asyncio.sleep(0.1)


@pytest.fixture
async def live_client(netns):
    build_namespace(netns)
    service = NetStateService(lambda: rtnl_source(netns=netns), description=netns)
    async with TestClient(TestServer(create_app(service, Settings(ping_interval=1.0)))) as client:
        yield client, service, netns


async def get_json(client: TestClient, path: str) -> Any:
    response = await client.get(path)
    assert response.status == 200, await response.text()
    return await response.json()


async def test_links_match_ip_json(live_client):
    client, _, netns = live_client
    links = await until_consistent(lambda: get_json(client, "/api/links"), lambda: ip_json(netns, "link", "show"), ("ifindex",))
    by_name = {link["ifname"]: link for link in links}
    assert {"lo", "vc0", "vc1", "veth-a", "veth-b"} <= by_name.keys()
    assert by_name["vc0"]["mtu"] == 1400
    assert by_name["veth-a"]["link_type"] == "ether"


async def test_addresses_match_ip_json(live_client):
    client, _, netns = live_client
    identity = ("ifindex", "family", "local", "prefixlen")

    async def ours() -> list[dict[str, Any]]:
        return flatten_addresses(await get_json(client, "/api/addresses"))

    addresses = await until_consistent(ours, lambda: flatten_addresses(ip_json(netns, "address", "show")), identity)
    assert {("10.50.0.1", 24), ("fd50::1", 64), ("10.51.0.1", 24)} <= {(a["local"], a["prefixlen"]) for a in addresses}
    # the link part of each entry matches ip too
    links = await get_json(client, "/api/addresses")
    assert mismatches([{k: v for k, v in link.items() if k != "addr_info"} for link in links], ip_json(netns, "address", "show"), ("ifindex",)) == []
    v6 = await get_json(client, "/api/addresses?family=inet6")
    assert v6 and all(info["family"] == "inet6" for link in v6 for info in link["addr_info"])
    assert all(link["addr_info"] for link in v6)  # links without an IPv6 address are left out, as with ip -6


@pytest.mark.parametrize(
    ("query", "ip_args"),
    [
        ("/api/routes?family=inet", ("-4", "route", "show")),
        ("/api/routes?family=inet6", ("-6", "route", "show")),
        ("/api/routes?family=4&table=100", ("-4", "route", "show", "table", "100")),
        ("/api/routes?family=4&table=all", ("-4", "route", "show", "table", "all")),
        ("/api/routes?family=6&table=all", ("-6", "route", "show", "table", "all")),
        ("/api/routes?table=local&family=4", ("-4", "route", "show", "table", "local")),
    ],
)
async def test_routes_match_ip_json(live_client, query, ip_args):
    client, _, netns = live_client
    identity = ("type", "dst", "dev", "table", "metric", "gateway")
    ours = await until_consistent(lambda: get_json(client, query), lambda: ip_json(netns, *ip_args), identity)
    assert ours


async def test_routes_without_family_are_both_families_of_the_main_table(live_client):
    # ip route defaults to IPv4; the API serves both unless ?family= says otherwise
    client, _, netns = live_client
    identity = ("type", "dst", "dev", "table", "metric", "gateway")
    ours = await until_consistent(
        lambda: get_json(client, "/api/routes"), lambda: ip_json(netns, "-4", "route", "show") + ip_json(netns, "-6", "route", "show"), identity
    )
    assert {"10.60.0.0/16", "fd60::/48"} <= {route["dst"] for route in ours}


async def test_neighbours_match_ip_json(live_client):
    client, service, netns = live_client
    ours = await until_consistent(lambda: get_json(client, "/api/neighbours"), lambda: ip_json(netns, "neigh", "show"), ("dst", "dev"))
    assert any(neighbour["dst"] == "10.50.0.2" and neighbour["lladdr"] == "02:00:00:00:00:02" for neighbour in ours)
    # (not compared with ?nud=all: the kernel creates multicast NOARP entries
    # without an RTM_NEWNEIGH, so a notification-fed view only has the ones
    # that existed at its initial dump)


async def test_a_veth_added_shows_up_on_the_stream_within_a_second(live_client):
    client, _, netns = live_client
    async with client.get("/api/events") as response:
        events = read_events(response)
        async with asyncio.timeout(10):
            assert (await anext(events)).event == "resync"
        started = time.monotonic()
        ip(netns, "link", "add", "veth-new", "type", "veth", "peer", "name", "veth-peer")
        async with asyncio.timeout(5):
            async for event in events:
                change = event.json()
                if change["kind"] == "link" and change["obj"].get("ifname") == "veth-new":
                    break
        elapsed = time.monotonic() - started
        assert change["action"] == "new"
        assert elapsed < 1.0, f"the new veth took {elapsed:.2f} s to reach the stream"


async def test_a_hundred_sse_clients_all_receive_a_new_link(live_client):
    client, _, netns = live_client
    connected = asyncio.Event()
    count = [0]

    async def follow() -> float:
        async with client.get("/api/events") as response:
            events = read_events(response)
            assert (await anext(events)).event == "resync"
            count[0] += 1
            if count[0] == 100:
                connected.set()
            async for event in events:
                change = event.json()
                if change["kind"] == "link" and change["obj"].get("ifname") == "veth-many":
                    return time.monotonic()
        raise AssertionError("the stream ended before the new link arrived")

    followers = [asyncio.create_task(follow()) for _ in range(100)]
    try:
        async with asyncio.timeout(30):
            await connected.wait()
        started = time.monotonic()
        ip(netns, "link", "add", "veth-many", "type", "veth", "peer", "name", "veth-many-p")
        async with asyncio.timeout(30):
            arrivals = await asyncio.gather(*followers)
    finally:
        for follower in followers:
            follower.cancel()
    assert len(arrivals) == 100
    assert max(arrivals) - started < 5.0


async def test_a_deleted_link_is_removed_from_the_view_and_streamed(live_client):
    client, service, netns = live_client
    async with client.get("/api/events") as response:
        events = read_events(response)
        async with asyncio.timeout(10):
            assert (await anext(events)).event == "resync"
        ip(netns, "link", "del", "vc0")
        async with asyncio.timeout(5):
            async for event in events:
                change = event.json()
                if change["kind"] == "link" and change["action"] == "del":
                    assert change["obj"]["ifname"] == "vc0"
                    break
    links = await get_json(client, "/api/links")
    assert "vc0" not in {link["ifname"] for link in links}
    routes = await until_consistent(
        lambda: get_json(client, "/api/routes"),
        lambda: ip_json(netns, "-4", "route", "show") + ip_json(netns, "-6", "route", "show"),
        ("dst", "dev", "gateway"),
    )
    assert all(route.get("dev") != "vc0" for route in routes)


def test_one_command_serves_on_loopback_and_stops_cleanly_on_sigint(netns):
    """``python -m examples.netstate_service --netns NS --port 0``: prints its
    URL (127.0.0.1), serves the API, and exits 0 promptly on SIGINT."""
    process = subprocess.Popen(
        [sys.executable, "-m", "examples.netstate_service", "--netns", netns, "--port", "0"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        readable, _, _ = select.select([process.stdout], [], [], 30)
        assert readable, "the service printed nothing within 30 s"
        line = process.stdout.readline()  # type: ignore[union-attr]
        assert "http://127.0.0.1:" in line, line + process.stderr.read()  # type: ignore[union-attr]
        url = line.split()[line.split().index("on") + 1]

        async def fetch() -> tuple[list[dict[str, Any]], str]:
            async with aiohttp.ClientSession() as session:
                async with session.get(url + "api/links") as response:
                    links = await response.json()
                async with session.get(url + "api/events") as response:
                    first = await anext(read_events(response))
                return links, first.event

        links, first_event = asyncio.run(asyncio.wait_for(fetch(), 30))
        assert [link["ifname"] for link in links] == ["lo"]
        assert first_event == "resync"
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=10)
        assert process.returncode == 0, stderr
        assert "stopped" in stdout
        assert "Traceback" not in stderr and "Task was destroyed" not in stderr, stderr
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
