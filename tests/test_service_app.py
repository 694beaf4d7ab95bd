"""The netstate service's HTTP layer, fed by a scripted event source (no netlink).

What a real kernel cannot be made to do on demand (a slow client, a failing
source, a change log overflow) is tested here; tests/test_service_netns.py
checks the same service against rtnl in a real namespace.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
from pathlib import Path
from typing import Any

import aiohttp
import attrs
import pytest
from aiohttp.test_utils import TestClient, TestServer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # examples/ is not an installed package

from examples.netstate_service import SYNCED, NetStateService, Settings, create_app  # noqa: E402
from examples.netstate_service.broadcast import Resync  # noqa: E402
from examples.netstate_service.sse_client import read_events  # noqa: E402


@attrs.frozen
class Link:
    ifindex: int
    ifname: str
    note: str = ""

    @property
    def key(self) -> int:
        return self.ifindex

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {"ifindex": self.ifindex, "ifname": self.ifname}
        if self.note:
            document["note"] = self.note
        return document


@attrs.frozen
class Route:
    family: int
    table: int
    dst: str

    @property
    def key(self) -> tuple[Any, ...]:
        return (self.family, self.table, self.dst, 0, 0, 0)

    def to_json(self) -> dict[str, Any]:
        return {"dst": self.dst, "table": self.table}


@attrs.frozen
class Event:
    action: str
    kind: str
    obj: Any


class ScriptedSource:
    """An event source: each open yields ``initial`` (then SYNCED), then
    whatever the test pushes; an Exception pushed makes it fail."""

    def __init__(self, initial: list[Event]) -> None:
        self.initial = initial
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.opened = 0
        self.closed = 0

    async def __call__(self):  # type: ignore[no-untyped-def]
        self.opened += 1
        try:
            for event in self.initial:
                yield event
            yield SYNCED
            while True:
                item = await self.queue.get()
                if isinstance(item, Exception):
                    raise item
                yield item
        finally:
            self.closed += 1

    def push(self, *items: Any) -> None:
        for item in items:
            self.queue.put_nowait(item)


INITIAL = [
    Event("new", "link", Link(1, "lo")),
    Event("new", "link", Link(2, "eth0")),
    Event("new", "route", Route(socket.AF_INET, 254, "10.0.0.0/8")),
    Event("new", "route", Route(socket.AF_INET6, 254, "fd00::/8")),
    Event("new", "route", Route(socket.AF_INET, 255, "127.0.0.1")),
]

FAST = Settings(ready_timeout=2.0, ping_interval=0.2, send_timeout=1.0, retry_ms=100)


def make_service(source: ScriptedSource, **options: Any) -> NetStateService:
    options.setdefault("retry_delay", 0.05)
    return NetStateService(source, **options)


@pytest.fixture
async def service_client():
    """(client, service, source) for an app fed by INITIAL."""
    clients = []

    async def start(initial: list[Event] = INITIAL, settings: Settings = FAST, **options: Any):
        source = ScriptedSource(list(initial))
        service = make_service(source, **options)
        client = TestClient(TestServer(create_app(service, settings)))
        await client.start_server()
        clients.append(client)
        return client, service, source

    yield start
    for client in clients:
        await client.close()


async def next_event(events: Any, timeout: float = 2.0) -> Any:
    async with asyncio.timeout(timeout):
        return await anext(events)


# -- JSON endpoints -------------------------------------------------------------------------
async def test_links_endpoint_serves_the_view_in_ifindex_order(service_client):
    client, _, _ = await service_client()
    response = await client.get("/api/links")
    assert response.status == 200
    assert await response.json() == [{"ifindex": 1, "ifname": "lo"}, {"ifindex": 2, "ifname": "eth0"}]


async def test_routes_default_to_the_main_table_of_every_family(service_client):
    client, _, _ = await service_client()
    assert [route["dst"] for route in await (await client.get("/api/routes")).json()] == ["10.0.0.0/8", "fd00::/8"]


async def test_routes_filter_by_table_and_family(service_client):
    client, _, _ = await service_client()
    # like ip: a route names its table only when every table is listed
    assert await (await client.get("/api/routes?table=local")).json() == [{"dst": "127.0.0.1"}]
    assert len(await (await client.get("/api/routes?table=all")).json()) == 3
    assert await (await client.get("/api/routes?family=inet6&table=all")).json() == [{"dst": "fd00::/8", "table": 254}]
    assert await (await client.get("/api/routes?table=100")).json() == []


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("/api/routes?family=inet7", "unknown family 'inet7': use one of inet, inet6, 4, 6, all"),
        ("/api/routes?table=mian", "unknown table 'mian'"),
        ("/api/routes?tabel=main", "unknown query parameter 'tabel' for /api/routes (accepted: family, table)"),
        ("/api/links?family=inet", "unknown query parameter 'family' for /api/links (accepted: none)"),
        ("/api/addresses?family=4&family=6", "query parameter 'family' given more than once"),
        ("/api/events?since=3", "unknown query parameter 'since'"),
    ],
)
async def test_unknown_query_values_get_400_with_a_clear_message(service_client, query, message):
    client, _, _ = await service_client()
    response = await client.get(query)
    assert response.status == 400
    assert message in (await response.json())["error"]


async def test_endpoints_are_read_only(service_client):
    client, _, _ = await service_client()
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        response = await client.request(method, "/api/links")
        assert response.status == 405, method


async def test_requests_wait_for_the_initial_state_then_give_503(service_client):
    # A source that never delivers its initial state: requests wait
    # ready_timeout, then get 503 with Retry-After rather than an empty view.
    class Stuck(ScriptedSource):
        async def __call__(self):  # type: ignore[no-untyped-def]
            await asyncio.sleep(3600)
            yield Event("new", "link", Link(1, "lo"))

    service = make_service(Stuck([]))
    async with TestClient(TestServer(create_app(service, Settings(ready_timeout=0.2)))) as client:
        response = await client.get("/api/links")
        assert response.status == 503
        assert response.headers["Retry-After"] == "1"
        assert "still loading" in (await response.json())["error"]


async def test_a_source_without_synced_is_ready_once_its_initial_burst_is_over():
    # rtnl.monitor(resync=True) yields its initial state in one burst and then
    # waits for notifications; it never yields SYNCED.
    class Burst(ScriptedSource):
        async def __call__(self):  # type: ignore[no-untyped-def]
            await asyncio.sleep(0.05)  # the dumps
            for index in range(1, 501):
                yield Event("new", "link", Link(index, f"if{index}"))
            await asyncio.sleep(3600)  # waiting for notifications
            yield Event("new", "link", Link(9999, "never"))

    service = make_service(Burst([]))
    async with TestClient(TestServer(create_app(service, FAST))) as client:
        links = await (await client.get("/api/links")).json()
        assert len(links) == 500


async def test_status_reports_counts_and_readiness(service_client):
    client, service, _ = await service_client()
    await service.wait_ready(2)
    status = await (await client.get("/api/status")).json()
    assert status["ready"] is True
    assert status["counts"]["links"] == 2 and status["counts"]["routes"] == 3
    assert status["event_id"] == service.log.last_event_id


async def test_page_and_its_script_are_served_without_external_resources(service_client):
    client, _, _ = await service_client()
    page = await (await client.get("/")).text()
    assert 'src="/static/app.js"' in page and "http://" not in page and "https://" not in page
    script = await client.get("/static/app.js")
    assert script.status == 200 and "EventSource" in await script.text()


# -- server-sent events -----------------------------------------------------------------------
async def test_events_start_with_a_resync_snapshot_then_stream_changes(service_client):
    client, service, source = await service_client()
    async with client.get("/api/events") as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")
        events = read_events(response)
        first = await next_event(events)
        assert first.event == "resync" and first.retry == FAST.retry_ms
        snapshot = first.json()
        assert snapshot["reason"] == "connect"
        assert snapshot["state"]["links"] == {"1": {"ifindex": 1, "ifname": "lo"}, "2": {"ifindex": 2, "ifname": "eth0"}}
        assert first.id == service.log.last_event_id

        source.push(Event("new", "link", Link(3, "veth0")), Event("del", "link", Link(2, "eth0")))
        added, removed = await next_event(events), await next_event(events)
        assert (added.event, added.json()) == ("change", {"action": "new", "kind": "link", "key": "3", "obj": {"ifindex": 3, "ifname": "veth0"}})
        assert removed.json()["action"] == "del" and removed.json()["key"] == "2"
        assert removed.id == service.log.last_event_id


async def test_unchanged_objects_produce_no_event(service_client):
    client, _, source = await service_client()
    async with client.get("/api/events") as response:
        events = read_events(response)
        await next_event(events)
        source.push(Event("new", "link", Link(1, "lo")), Event("new", "link", Link(9, "dummy9")))
        assert (await next_event(events)).json()["key"] == "9"


async def test_last_event_id_replays_the_missed_changes(service_client):
    client, service, source = await service_client()
    await service.wait_ready(2)
    seen = service.log.last_event_id
    source.push(*(Event("new", "link", Link(index, f"dummy{index}")) for index in (10, 11, 12)))
    async with asyncio.timeout(2):
        while service.state.count("link") < 5:
            await asyncio.sleep(0.01)
    async with client.get("/api/events", headers={"Last-Event-ID": seen}) as response:
        events = read_events(response)
        replayed = [await next_event(events) for _ in range(3)]
        assert [event.event for event in replayed] == ["change"] * 3
        assert [event.json()["key"] for event in replayed] == ["10", "11", "12"]


@pytest.mark.parametrize(("last_event_id", "reason"), [("deadbeef-1", "unknown-id"), ("nonsense", "unknown-id"), (None, "expired")])
async def test_unreplayable_last_event_id_gets_a_resync_with_the_reason(service_client, last_event_id, reason):
    client, service, source = await service_client(replay_capacity=2)
    await service.wait_ready(2)
    if last_event_id is None:  # an id from this process, older than the buffer
        last_event_id = service.log.event_id(1)
        source.push(*(Event("new", "link", Link(index, f"dummy{index}")) for index in range(10, 15)))
        async with asyncio.timeout(2):
            while service.state.count("link") < 7:
                await asyncio.sleep(0.01)
    async with client.get("/api/events", headers={"Last-Event-ID": last_event_id}) as response:
        first = await next_event(read_events(response))
        assert first.event == "resync" and first.json()["reason"] == reason
        assert first.id == service.log.last_event_id


async def test_a_hundred_concurrent_clients_all_receive_a_change(service_client):
    client, service, source = await service_client()
    await service.wait_ready(2)

    async def follow(ready: asyncio.Event, counter: list[int]) -> str:
        async with client.get("/api/events") as response:
            events = read_events(response)
            assert (await next_event(events, 10)).event == "resync"
            counter.append(1)
            if len(counter) == 100:
                ready.set()
            change = await next_event(events, 10)
            return change.json()["obj"]["ifname"]

    ready, counter = asyncio.Event(), []
    followers = [asyncio.create_task(follow(ready, counter)) for _ in range(100)]
    async with asyncio.timeout(20):
        await ready.wait()
    source.push(Event("new", "link", Link(50, "veth-new")))
    async with asyncio.timeout(20):
        names = await asyncio.gather(*followers)
    assert names == ["veth-new"] * 100


async def test_a_stalled_client_is_resynced_and_cut_off_without_slowing_others(service_client):
    """A client that stops reading: its queue stays within queue_limit (then
    one resync), it is disconnected after send_timeout, and a reading client
    meanwhile receives every change in order."""
    limit = 8
    client, service, source = await service_client(queue_limit=limit, settings=Settings(ready_timeout=2, ping_interval=5, send_timeout=0.5))
    await service.wait_ready(2)

    # The stalled client: a tiny receive buffer, and it never reads.
    stalled = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.setblocking(False)
    await asyncio.get_running_loop().sock_connect(stalled, (client.server.host, client.server.port))
    stalled.send(b"GET /api/events HTTP/1.1\r\nHost: test\r\n\r\n")
    try:
        async with client.get("/api/events") as response:
            events = read_events(response)
            assert (await next_event(events)).event == "resync"
            async with asyncio.timeout(2):
                while len(service.hub) < 2:
                    await asyncio.sleep(0.01)
            big = "x" * 200_000  # each change ~200 KB: the stalled socket fills quickly
            received, worst_backlog = 0, 0
            for index in range(100, 160):
                source.push(Event("new", "link", Link(index, f"dummy{index}", note=big)))
                event = await next_event(events, 5)
                assert (event.event, event.json()["key"]) == ("change", str(index))
                received += 1
                worst_backlog = max([worst_backlog, *(subscription.pending for subscription in service.hub._subscriptions)])
            assert received == 60
            assert worst_backlog <= limit
            async with asyncio.timeout(5):  # send_timeout 0.5 s cuts the stalled client off
                while len(service.hub) > 1:
                    await asyncio.sleep(0.05)
            assert service.hub.lagged >= 1
    finally:
        stalled.close()


async def test_a_subscription_past_its_limit_drops_its_queue_for_one_resync(service_client):
    _, service, source = await service_client(queue_limit=4)
    await service.wait_ready(2)
    subscription = service.hub.subscribe(service.log.last_event_id)
    for index in range(20, 40):
        source.push(Event("new", "link", Link(index, f"dummy{index}")))
    async with asyncio.timeout(2):
        while service.state.count("link") < 22:
            await asyncio.sleep(0.01)
    assert subscription.pending <= 4
    item = await subscription.next()
    assert isinstance(item, Resync) and item.reason == "lagged"
    assert len(json.loads(item.data)["state"]["links"]) == 22 and item.event_id == service.log.last_event_id
    subscription.close()


async def test_a_disconnected_idle_client_is_dropped_within_a_ping_interval(service_client):
    client, service, _ = await service_client()
    await service.wait_ready(2)
    session = aiohttp.ClientSession()
    response = await session.get(f"http://{client.server.host}:{client.server.port}/api/events")
    await next_event(read_events(response))
    assert len(service.hub) == 1
    response.close()
    await session.close()
    async with asyncio.timeout(3):  # ping_interval is 0.2 s
        while len(service.hub):
            await asyncio.sleep(0.05)


# -- the monitor task ------------------------------------------------------------------------
async def test_malformed_events_are_counted_and_skipped(service_client):
    client, service, source = await service_client()
    await service.wait_ready(2)
    source.push(Event("new", "tunnel", Link(7, "x")), object(), Event("new", "link", Link(8, "ok8")))
    async with asyncio.timeout(2):
        while service.state.count("link") < 3:
            await asyncio.sleep(0.01)
    assert service.skipped_events == 2
    assert [link["ifname"] for link in await (await client.get("/api/links")).json()] == ["lo", "eth0", "ok8"]


async def test_a_failing_source_is_reopened_and_vanished_objects_are_deleted(service_client):
    client, service, source = await service_client()
    async with client.get("/api/events") as response:
        events = read_events(response)
        await next_event(events)
        source.initial = [Event("new", "link", Link(1, "lo"))]  # eth0 and the routes vanish while down
        source.push(OSError("netns went away"))
        deleted = [(await next_event(events)).json() for _ in range(4)]
        assert {(change["action"], change["kind"]) for change in deleted} == {("del", "link"), ("del", "route")}
    assert source.opened == 2 and source.closed == 1
    status = await (await client.get("/api/status")).json()
    assert status["source_errors"] == 1 and "netns went away" in status["last_error"]
    assert await (await client.get("/api/links")).json() == [{"ifindex": 1, "ifname": "lo"}]


async def test_a_source_that_never_opens_gives_503_naming_the_error_and_backs_off():
    class Broken(ScriptedSource):
        async def __call__(self):  # type: ignore[no-untyped-def]
            self.opened += 1
            raise FileNotFoundError("network namespace 'gone' not found")
            yield  # pragma: no cover

    source = Broken([])
    service = make_service(source, retry_delay=0.02, max_retry_delay=0.1)
    async with TestClient(TestServer(create_app(service, Settings(ready_timeout=0.5)))) as client:
        response = await client.get("/api/routes")
        assert response.status == 503
        assert "network namespace 'gone' not found" in (await response.json())["error"]
        opened = source.opened
        await asyncio.sleep(0.5)
        # doubling from 20 ms, capped at 100 ms: a handful of retries, not a busy loop
        assert 2 <= source.opened - opened <= 8


async def test_shutdown_ends_streams_closes_the_source_and_leaves_no_tasks():
    source = ScriptedSource(list(INITIAL))
    service = make_service(source)
    before = asyncio.all_tasks()
    server = TestServer(create_app(service, FAST))
    client = TestClient(server)
    await client.start_server()
    response = await client.get("/api/events")
    events = read_events(response)
    assert (await next_event(events)).event == "resync"
    async with asyncio.timeout(5):
        await client.close()  # runs on_shutdown and cleanup_ctx
    assert source.closed == 1 and not service.running and len(service.hub) == 0
    with pytest.raises((StopAsyncIteration, aiohttp.ClientError)):
        await next_event(events)
    await asyncio.sleep(0)
    leftover = [task for task in asyncio.all_tasks() - before if task is not asyncio.current_task()]
    assert leftover == []
