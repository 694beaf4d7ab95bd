"""The rtnl monitor: initial state, every change, and resync after an overrun."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import aionlmmap
from aionlmmap import RingConfig, rtnl
from conftest import ip
from rtnl_helpers import quiet_ipv6


class View:
    """A consumer's picture of the kernel state, built only from events.
    Counts events that changed nothing (there must be none)."""

    def __init__(self) -> None:
        self.state: dict[tuple[str, Any], Any] = {}
        self.events: list[Any] = []
        self.redundant: list[Any] = []
        self._changed = asyncio.Event()

    def apply(self, event: Any) -> None:
        key = (event.kind, event.obj.key)
        if event.action == "new":
            if self.state.get(key) == event.obj:
                self.redundant.append(event)
            self.state[key] = event.obj
        else:
            if key not in self.state:
                self.redundant.append(event)
            self.state.pop(key, None)
        self.events.append(event)
        self._changed.set()

    def objects(self, kind: str) -> dict[Any, Any]:
        return {key[1]: obj for key, obj in self.state.items() if key[0] == kind}

    async def wait_for_quiet(self, quiet: float = 0.5, timeout: float = 20.0) -> None:
        """Until no event came for ``quiet`` seconds."""
        async with asyncio.timeout(timeout):
            while True:
                self._changed.clear()
                try:
                    await asyncio.wait_for(self._changed.wait(), quiet)
                except TimeoutError:
                    return

    async def wait_for(self, condition: Callable[[], bool], timeout: float = 20.0) -> None:
        async with asyncio.timeout(timeout):
            while not condition():
                self._changed.clear()
                await self._changed.wait()


async def consume(generator: Any, view: View) -> None:
    async for event in generator:
        view.apply(event)


async def current(netns: str) -> dict[str, dict[Any, Any]]:
    async with rtnl.open(netns=netns) as nl:
        snapshot = await nl.snapshot(["link", "address", "route", "neighbour", "rule"])
    return {kind: {obj.key: obj for obj in objects} for kind, objects in snapshot.items()}


async def test_monitor_starts_with_the_current_state_then_sees_every_change(netns: str) -> None:
    quiet_ipv6(netns)
    async with rtnl.open(netns=netns) as nl:
        view = View()
        task = asyncio.create_task(consume(nl.monitor(neighbours=True, rules=True), view))
        try:
            await view.wait_for(lambda: any(key == ("link", 1) for key in view.state))
            await nl.link_add("m0", "veth", peer="m1")
            await view.wait_for(lambda: {link.ifname for link in view.objects("link").values()} >= {"m0", "m1"})
            await nl.link_set("m0", up=True, mtu=1400)
            await view.wait_for(lambda: any(link.ifname == "m0" and link.mtu == 1400 and link.is_up for link in view.objects("link").values()))
            await nl.address_add("m0", "192.0.2.1/24")
            await nl.address_add("m0", "2001:db8::1/64")
            await nl.route_add("198.51.100.0/24", gateway="192.0.2.9", table=100)
            await nl.neighbour_add("m0", "192.0.2.50", lladdr="02:00:00:00:00:50")
            await nl.rule_add(priority=777, src="10.0.0.0/8", table=100)
            await view.wait_for(
                lambda: (4, 100, "198.51.100.0", 24, 0, None) not in view.objects("route")
                and any(route.dst == "198.51.100.0" and route.table == 100 for route in view.objects("route").values())
                and any(neigh.dst == "192.0.2.50" for neigh in view.objects("neighbour").values())
                and any(rule.priority == 777 for rule in view.objects("rule").values())
                and {address.local for address in view.objects("address").values()} >= {"192.0.2.1", "2001:db8::1"}
            )
            await nl.rule_delete(priority=777)
            await nl.route_delete("198.51.100.0/24", table=100)
            await nl.neighbour_delete("m0", "192.0.2.50")
            await nl.address_delete("m0", "192.0.2.1/24")
            await view.wait_for(
                lambda: not any(rule.priority == 777 for rule in view.objects("rule").values())
                and not any(route.dst == "198.51.100.0" for route in view.objects("route").values())
                and not any(neigh.dst == "192.0.2.50" for neigh in view.objects("neighbour").values())
                and "192.0.2.1" not in {address.local for address in view.objects("address").values()}
            )
            await nl.link_delete("m0")
            await view.wait_for(lambda: not {link.ifname for link in view.objects("link").values()} & {"m0", "m1"})
            await asyncio.sleep(0.3)  # let stray notifications arrive before comparing
            kernel = await current(netns)
            for kind in ("link", "address", "route", "neighbour", "rule"):
                assert view.objects(kind) == kernel[kind], kind
            assert view.redundant == []
            assert {event.action for event in view.events} == {"new", "del"}
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def test_routes_of_a_deleted_link_leave_the_view(netns: str) -> None:
    # IPv4 drops a device's routes without RTM_DELROUTE; the monitor re-dumps.
    ip(netns, "link", "add", "k0", "type", "veth", "peer", "name", "k1")
    ip(netns, "addr", "add", "192.0.2.1/24", "dev", "k0")
    ip(netns, "link", "set", "k0", "up")
    ip(netns, "route", "add", "198.51.100.0/24", "via", "192.0.2.7")
    async with rtnl.open(netns=netns) as nl:
        view = View()
        task = asyncio.create_task(consume(nl.monitor(), view))
        try:
            await view.wait_for(lambda: any(route.dst == "198.51.100.0" for route in view.objects("route").values()))
            ip(netns, "link", "set", "k0", "down")
            await view.wait_for(lambda: not any(route.dst == "198.51.100.0" for route in view.objects("route").values()))
            ip(netns, "link", "del", "k0")
            await view.wait_for(lambda: not any(route.oif == 2 or route.dev in ("k0", "k1") for route in view.objects("route").values()))
            await asyncio.sleep(0.3)
            assert view.objects("route") == (await current(netns))["route"]
            assert view.redundant == []
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def test_resync_after_an_overrun_yields_exactly_the_missing_changes(netns: str, tmp_path: Any) -> None:
    ip(netns, "link", "add", "r0", "type", "veth", "peer", "name", "r1")
    ip(netns, "link", "set", "r0", "up")
    ring = aionlmmap.open(
        aionlmmap.NETLINK_ROUTE,
        netns=netns,
        rcvbuf=4096,
        rx=RingConfig(block_size=16384, block_nr=4, frame_size=16384, frame_nr=4),
    )
    async with rtnl.open(netns=netns) as nl:
        view = View()
        gate = asyncio.Event()
        gate.set()

        async def consume_when_open() -> None:
            async for event in nl.monitor(ring=ring):
                view.apply(event)
                await gate.wait()

        task = asyncio.create_task(consume_when_open())
        try:
            await view.wait_for(lambda: any(key[0] == "route" for key in view.state))
            await view.wait_for_quiet()
            gate.clear()  # nobody reads: 4 frames and a 4 KiB socket buffer overflow during the burst
            before = len(view.events)
            batch = tmp_path / "routes.batch"
            batch.write_text("".join(f"route add 10.{index // 250}.{index % 250}.0/24 dev r0\n" for index in range(600)))
            process = await asyncio.create_subprocess_exec("ip", "-n", netns, "-batch", str(batch))
            assert await process.wait() == 0
            kernel_routes = (await current(netns))["route"]
            expected = {key for key, route in kernel_routes.items() if route.dev == "r0" and route.dst_len == 24 and route.dst.startswith("10.")}
            assert len(expected) == 600
            gate.set()
            await view.wait_for(lambda: expected <= set(view.objects("route")), timeout=30)
            await view.wait_for_quiet()  # nothing trickles in after the resync
            assert ring.stats.overruns >= 1
            burst = view.events[before:]
            assert {(event.action, event.kind) for event in burst} == {("new", "route")}
            assert len(burst) == 600 and {event.obj.key for event in burst} == expected
            assert view.redundant == []
            assert view.objects("route") == (await current(netns))["route"]
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
