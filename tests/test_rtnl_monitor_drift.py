"""The monitor's view never drifts from the kernel: each case the kernel
handles without the notification a naive view would need (issue 13).

Every test keeps a view built only from ``monitor()`` events and requires it
to equal a fresh dump (``to_json()`` of every object, keyed by ``obj.key``)
within a few seconds of the change; a view that drifted never does."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from aionlmmap import rtnl
from conftest import ip, run
from rtnl_helpers import quiet_ipv6

from benchmarks.monitor_differential import View, difference, fresh, normalized

ALL = ["link", "address", "route", "neighbour", "rule"]


@asynccontextmanager
async def watching(netns: str, **kinds: bool) -> AsyncIterator[View]:
    view = View()
    async with rtnl.open(netns=netns) as nl:

        async def consume() -> None:
            async for event in nl.monitor(poll=0.2, **kinds):
                view.apply(event)

        task = asyncio.create_task(consume())
        view.task = task  # type: ignore[attr-defined]
        try:
            await asyncio.sleep(0.3)
            yield view
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def exact(netns: str, view: View, kinds: list[str], timeout: float = 4.0) -> None:
    """The view equals a fresh dump of ``kinds`` within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        task = view.task  # type: ignore[attr-defined]
        if task.done():
            task.result()
        kernel = await fresh(netns, kinds)
        mine = {key: normalized(key[0], obj) for key, obj in view.state.items() if key[0] in kinds}
        if mine == kernel:
            return
        if time.monotonic() > deadline:
            raise AssertionError("the view drifted from the kernel:\n" + "\n".join(difference(mine, kernel)))
        await asyncio.sleep(0.05)


def routes_of(view: View, predicate: Callable[[Any], bool]) -> list[dict[str, Any]]:
    return sorted((route.to_json() for (kind, _key), route in view.state.items() if kind == "route" and predicate(route)), key=repr)


def pair(netns: str, a: str, b: str, *, up: bool = True) -> None:
    ip(netns, "link", "add", a, "type", "veth", "peer", "name", b)
    if up:
        ip(netns, "link", "set", a, "up")
        ip(netns, "link", "set", b, "up")


async def test_ipv4_replace_and_change_take_the_first_aliass_place(netns: str) -> None:
    quiet_ipv6(netns)
    pair(netns, "ra0", "ra1")
    pair(netns, "rb0", "rb1")
    ip(netns, "addr", "add", "192.0.2.1/24", "dev", "ra0")
    ip(netns, "addr", "add", "198.51.100.1/24", "dev", "rb0")
    async with watching(netns, links=False, addresses=False, routes=True) as view:
        ip(netns, "route", "add", "203.0.113.0/24", "via", "192.0.2.2")
        ip(netns, "route", "replace", "203.0.113.0/24", "via", "192.0.2.3")
        ip(netns, "route", "change", "203.0.113.0/24", "via", "192.0.2.4", "proto", "static")
        await exact(netns, view, ["route"])
        assert [route["gateway"] for route in routes_of(view, lambda route: route.dst == "203.0.113.0")] == ["192.0.2.4"]
        # Aliases: append goes last, prepend first; replace takes the first one's place.
        ip(netns, "route", "append", "203.0.113.0/24", "via", "198.51.100.2")
        ip(netns, "route", "prepend", "203.0.113.0/24", "dev", "rb0")
        ip(netns, "route", "replace", "203.0.113.0/24", "via", "198.51.100.9")
        await exact(netns, view, ["route"])
        gateways = sorted(route.get("gateway", "-") for route in routes_of(view, lambda route: route.dst == "203.0.113.0"))
        assert gateways == ["192.0.2.4", "198.51.100.2", "198.51.100.9"]
        ip(netns, "route", "del", "203.0.113.0/24", "via", "198.51.100.2")
        ip(netns, "route", "replace", "203.0.113.0/24", "via", "192.0.2.7", "metric", "5")
        await exact(netns, view, ["route"])


async def test_ipv6_replace_append_and_multipath_follow_the_kernel(netns: str) -> None:
    quiet_ipv6(netns)
    pair(netns, "sa0", "sa1")
    pair(netns, "sb0", "sb1")
    ip(netns, "addr", "add", "2001:db8:a::1/64", "dev", "sa0", "nodad")
    ip(netns, "addr", "add", "2001:db8:b::1/64", "dev", "sb0", "nodad")
    async with watching(netns, links=False, addresses=False, routes=True) as view:
        ip(netns, "-6", "route", "add", "2001:db8:9::/64", "via", "2001:db8:a::2")
        ip(netns, "-6", "route", "append", "2001:db8:9::/64", "via", "2001:db8:b::2")
        ip(netns, "-6", "route", "prepend", "2001:db8:9::/64", "via", "2001:db8:b::3")
        await exact(netns, view, ["route"])
        ip(netns, "-6", "route", "append", "2001:db8:9::/64", "dev", "sa0")
        ip(netns, "-6", "route", "replace", "2001:db8:9::/64", "via", "2001:db8:a::5")
        await exact(netns, view, ["route"])
        ip(netns, "-6", "route", "del", "2001:db8:9::/64", "via", "2001:db8:a::5")
        ip(netns, "-6", "route", "replace", "2001:db8:9::/64", "nexthop", "via", "2001:db8:a::7", "nexthop", "via", "2001:db8:b::7", "weight", "3")
        ip(netns, "-6", "route", "del", "2001:db8:9::/64", "via", "2001:db8:b::7")
        await exact(netns, view, ["route"])


async def test_routes_the_kernel_drops_silently_leave_a_routes_only_view(netns: str) -> None:
    quiet_ipv6(netns)
    pair(netns, "da0", "da1")
    pair(netns, "db0", "db1")
    ip(netns, "addr", "add", "192.0.2.1/24", "dev", "da0")
    ip(netns, "addr", "add", "198.51.100.1/24", "dev", "db0")
    ip(netns, "addr", "add", "198.51.100.77/24", "dev", "db0")
    async with watching(netns, links=False, addresses=False, routes=True) as view:
        ip(netns, "route", "add", "203.0.113.0/24", "via", "192.0.2.2")
        ip(netns, "route", "add", "10.1.0.0/16", "via", "198.51.100.2", "src", "198.51.100.77", "table", "100")
        ip(netns, "route", "add", "10.2.0.0/16", "nexthop", "via", "192.0.2.2", "nexthop", "via", "198.51.100.2")
        await exact(netns, view, ["route"])
        # fib_sync_down_dev: a link going down takes its IPv4 routes (and
        # marks multipath nexthops dead) without RTM_DELROUTE.
        ip(netns, "link", "set", "da0", "down")
        await exact(netns, view, ["route"])
        assert not routes_of(view, lambda route: route.dst == "203.0.113.0")
        # fib_del_ifaddr: a secondary address going (its local and
        # broadcast routes are notified; the rest is left to the dump).
        ip(netns, "addr", "del", "198.51.100.77/24", "dev", "db0")
        await exact(netns, view, ["route"])
        # fib_disable_ip: the last address of a device leaving takes its routes.
        ip(netns, "addr", "del", "198.51.100.1/24", "dev", "db0")
        await exact(netns, view, ["route"])
        assert not routes_of(view, lambda route: route.family == 2 and (route.dev == "db0" or route.dst == "10.2.0.0"))
        ip(netns, "link", "del", "db0")
        await exact(netns, view, ["route"])
        # Only routes were asked for: links and addresses were followed but not shown.
        assert {kind for kind, _key in view.state} == {"route"}


async def test_route_flags_follow_carrier_and_link_state(netns: str) -> None:
    quiet_ipv6(netns)
    pair(netns, "fa0", "fa1")
    pair(netns, "fb0", "fb1")
    ip(netns, "addr", "add", "192.0.2.1/24", "dev", "fa0")
    ip(netns, "addr", "add", "198.51.100.1/24", "dev", "fb0")
    ip(netns, "route", "add", "10.2.0.0/16", "nexthop", "via", "192.0.2.2", "nexthop", "via", "198.51.100.2")
    async with watching(netns, links=True, addresses=True, routes=True) as view:
        # The peer going down takes fa0's carrier: LINKDOWN on its IPv4
        # nexthop and on fe80::/64 dev fa0, set and cleared without a route
        # notification (fib_sync_down_dev/fib_sync_up, fib6_ifdown/fib6_ifup).
        ip(netns, "link", "set", "fa1", "down")
        await exact(netns, view, ALL[:3])
        assert any("linkdown" in route["flags"] for route in routes_of(view, lambda route: route.dst == "fe80::" and route.dev == "fa0"))
        ip(netns, "link", "set", "fa1", "up")
        await exact(netns, view, ALL[:3])
        assert all("linkdown" not in route["flags"] for route in routes_of(view, lambda route: route.dst == "fe80::"))
        ip(netns, "link", "set", "fb0", "down")  # multipath nexthop via fb0: dead
        await exact(netns, view, ALL[:3])
        ip(netns, "link", "set", "fb0", "up")
        await exact(netns, view, ALL[:3])


async def test_every_neighbour_the_kernel_has_including_multicast_noarp(netns: str) -> None:
    quiet_ipv6(netns)
    async with watching(netns, links=True, addresses=False, routes=False, neighbours=True) as view:
        # MLD reports make ff02::16 NOARP entries with no RTM_NEWNEIGH.
        pair(netns, "na0", "na1")
        deadline = time.monotonic() + 5
        while "NOARP" not in ip(netns, "neigh", "show", "nud", "all").stdout:
            assert time.monotonic() < deadline, "no multicast NOARP entry appeared"
            await asyncio.sleep(0.1)
        await exact(netns, view, ["link", "neighbour"])
        assert any(neighbour.to_json().get("state") == ["NOARP"] for (kind, _key), neighbour in view.state.items() if kind == "neighbour")
        ip(netns, "neigh", "add", "192.0.2.9", "lladdr", "02:00:00:00:00:09", "dev", "na0", "nud", "noarp")
        await exact(netns, view, ["link", "neighbour"])


async def test_kernel_made_tentative_link_local_addresses_are_in_the_view(netns: str) -> None:
    # DAD that lasts: the link-local addresses stay tentative for the test,
    # and addrconf tells of them only when DAD ends.
    for scope in ("all", "default"):
        for key, value in (("accept_dad", "1"), ("dad_transmits", "30"), ("router_solicitations", "0")):
            run("ip", "netns", "exec", netns, "sysctl", "-q", "-w", f"net.ipv6.conf.{scope}.{key}={value}")
    async with watching(netns, links=True, addresses=True, routes=False) as view:
        pair(netns, "la0", "la1")
        deadline = time.monotonic() + 5
        while "fe80::" not in ip(netns, "-6", "addr", "show", "dev", "la0").stdout:
            assert time.monotonic() < deadline, "no link-local address appeared"
            await asyncio.sleep(0.1)
        assert "tentative" in ip(netns, "-6", "addr", "show", "dev", "la0").stdout
        await exact(netns, view, ["link", "address"])
        assert any(address.local.startswith("fe80::") for (kind, _key), address in view.state.items() if kind == "address")
        # ip address change of a tentative address: inet6_addr_modify tells nothing.
        local = next(address.local for (kind, _key), address in view.state.items() if kind == "address" and address.dev == "la0")
        ip(netns, "addr", "change", f"{local}/64", "dev", "la0", "valid_lft", "600", "preferred_lft", "300")
        await exact(netns, view, ["link", "address"])


async def test_veth_links_keep_their_peer_and_its_state(netns: str) -> None:
    async with watching(netns, links=True, addresses=False, routes=False) as view:
        # The peer is announced first, with IFLA_LINK 0 (its partner has no
        # ifindex yet); the kernel never announces it again until it changes.
        pair(netns, "pa0", "pa1", up=False)
        await exact(netns, view, ["link"])
        ip(netns, "link", "set", "pa0", "up")  # pa1 shows pa0 up (no M-DOWN) without a message of its own
        await exact(netns, view, ["link"])
        ip(netns, "link", "set", "pa0", "down")
        ip(netns, "link", "set", "pa0", "name", "pz0")  # pa1 names its peer anew
        ip(netns, "link", "set", "pz0", "up")
        await exact(netns, view, ["link"])
        links = {link.ifname: link.to_json() for (kind, _key), link in view.state.items() if kind == "link"}
        assert links["pa1"]["link"] == "pz0" and links["pz0"]["link"] == "pa1"


async def test_a_rename_renames_the_device_in_every_object_of_the_view(netns: str) -> None:
    quiet_ipv6(netns)
    pair(netns, "ma0", "ma1")
    ip(netns, "addr", "add", "192.0.2.1/24", "dev", "ma0")
    ip(netns, "route", "add", "203.0.113.0/24", "via", "192.0.2.2", "table", "100")
    ip(netns, "neigh", "add", "192.0.2.2", "lladdr", "02:00:00:00:00:02", "dev", "ma0")
    async with watching(netns, links=True, addresses=True, routes=True, neighbours=True) as view:
        ip(netns, "link", "set", "ma0", "down")
        ip(netns, "link", "set", "ma0", "name", "mz0")
        ip(netns, "link", "set", "mz0", "up")
        ip(netns, "route", "add", "203.0.113.0/24", "via", "192.0.2.2", "table", "100")
        await exact(netns, view, ALL[:4])
        assert not [obj for (_kind, _key), obj in view.state.items() if getattr(obj, "dev", None) == "ma0"]


async def test_local_routes_and_link_local_addresses_follow_links_renamed_enslaved_and_released(netns: str) -> None:
    # The drift the long differential runs reported here (stale IPv6
    # link-local and tentative addresses, local-table routes of renamed or
    # enslaved links) came from an L2 loop the driver made (both ends of a
    # veth pair bridged): the monitor lagged behind the storm. Without a
    # loop, each step settles: link-local addresses made on NETDEV_UP and
    # told of when DAD ends (addrconf_dad_completed, with their local route),
    # IPv4 local and broadcast routes (fib_add_ifaddr on NETDEV_UP, dropped
    # silently by fib_disable_ip on NETDEV_DOWN), names after a rename.
    for scope in ("all", "default"):
        for key, value in (("accept_dad", "1"), ("dad_transmits", "1"), ("router_solicitations", "0")):
            run("ip", "netns", "exec", netns, "sysctl", "-q", "-w", f"net.ipv6.conf.{scope}.{key}={value}")
    kinds = ["link", "address", "route", "neighbour"]
    async with watching(netns, links=True, addresses=True, routes=True, neighbours=True) as view:
        pair(netns, "ea0", "ea1", up=False)
        ip(netns, "link", "add", "ebr", "type", "bridge")
        ip(netns, "addr", "add", "192.0.2.1/24", "dev", "ea0")
        ip(netns, "addr", "add", "2001:db8:e::1/64", "dev", "ea0")
        ip(netns, "link", "set", "ea0", "up")
        ip(netns, "link", "set", "ea1", "up")
        await exact(netns, view, kinds)
        ip(netns, "link", "set", "ea0", "down")
        ip(netns, "link", "set", "ea0", "name", "eb0")
        ip(netns, "link", "set", "eb0", "up")
        await exact(netns, view, kinds)
        # addrconf_ifdown dropped the IPv6 address (keep_addr_on_down 0).
        ip(netns, "addr", "add", "2001:db8:e::1/64", "dev", "eb0", "nodad")
        ip(netns, "link", "set", "ea1", "master", "ebr")
        ip(netns, "link", "set", "ebr", "up")
        ip(netns, "addr", "add", "198.51.100.1/24", "dev", "ebr")
        await exact(netns, view, kinds)
        ip(netns, "link", "set", "ea1", "down")
        ip(netns, "link", "set", "ea1", "name", "eb1")
        ip(netns, "link", "set", "eb1", "nomaster")
        ip(netns, "link", "set", "eb1", "up")
        ip(netns, "link", "set", "eb0", "master", "ebr")
        await exact(netns, view, kinds)
        ip(netns, "link", "del", "ebr")
        await exact(netns, view, kinds)
        local = {route.dst for (kind, _key), route in view.state.items() if kind == "route" and route.type == 2}
        assert {"192.0.2.1", "2001:db8:e::1"} <= local


async def test_proxy_entries_and_bridge_fdb_entries_stay_out_of_the_view_as_out_of_the_dump(netns: str) -> None:
    # The neighbour dump without NTF_PROXY lists no proxy entries and the
    # monitor leaves out AF_BRIDGE fdb entries (RTNLGRP_NEIGH carries both).
    quiet_ipv6(netns)
    pair(netns, "xa0", "xa1")
    ip(netns, "link", "add", "xbr0", "type", "bridge")
    async with watching(netns, links=True, addresses=False, routes=False, neighbours=True) as view:
        ip(netns, "neigh", "add", "proxy", "2001:db8::5", "dev", "xa0")
        ip(netns, "link", "set", "xa1", "master", "xbr0")
        ip(netns, "link", "set", "xbr0", "up")
        ip(netns, "neigh", "add", "192.0.2.9", "lladdr", "02:00:00:00:00:09", "dev", "xa0")
        await exact(netns, view, ["link", "neighbour"])
        assert not [neighbour for (kind, _key), neighbour in view.state.items() if kind == "neighbour" and neighbour.dst == "2001:db8::5"]


async def test_the_route_monitor_example_shows_replaced_and_silently_dropped_routes_leave(netns: str) -> None:
    import pathlib
    import signal
    import subprocess
    import sys

    quiet_ipv6(netns)
    pair(netns, "ea0", "ea1")
    ip(netns, "addr", "add", "192.0.2.1/24", "dev", "ea0")
    example = pathlib.Path(__file__).parent.parent / "examples" / "route_monitor.py"
    process = await asyncio.create_subprocess_exec(sys.executable, str(example), "--netns", netns, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    async def until(text: str) -> list[str]:
        # Generous: the example is a fresh python doing its first dumps, on
        # a machine that may be loaded; on a timeout, say what it printed.
        seen = []
        try:
            async with asyncio.timeout(30):
                while True:
                    line = (await process.stdout.readline()).decode()  # type: ignore[union-attr]
                    assert line, f"the example ended: {seen}"
                    seen.append(line.rstrip("\n"))
                    if text in line:
                        return seen
        except TimeoutError:
            raise AssertionError(f"the example did not print {text!r} in 30 s; it printed {seen}") from None

    try:
        await until("routes:")
        ip(netns, "route", "add", "203.0.113.0/24", "via", "192.0.2.2")
        assert (await until("203.0.113.0/24"))[-1].startswith("+ 203.0.113.0/24 via 192.0.2.2")
        ip(netns, "route", "replace", "203.0.113.0/24", "via", "192.0.2.3")
        lines = await until("via 192.0.2.3")
        assert [line.split("   ")[0] for line in lines[-2:]] == ["- 203.0.113.0/24 via 192.0.2.2 dev ea0", "+ 203.0.113.0/24 via 192.0.2.3 dev ea0"]
        ip(netns, "link", "set", "ea0", "down")  # no RTM_DELROUTE for it
        assert (await until("203.0.113.0/24"))[-1].startswith("- 203.0.113.0/24 via 192.0.2.3")
    finally:
        process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(process.wait(), 20) == 0


async def test_rules_that_differ_only_in_newer_selectors_are_distinct_objects(netns: str) -> None:
    # The kernel tells rules apart by every selector (fib_rule_matchall /
    # rule_find compare ip_proto, port ranges, uid range, tun_id, l3mdev,
    # suppress_* too): rules equal in the older selectors are distinct.
    selectors = [["ipproto", "tcp"], ["ipproto", "udp"], ["ipproto", "tcp", "dport", "22"], ["ipproto", "tcp", "sport", "1000-2000"],
                 ["uidrange", "100-200"], ["suppress_prefixlength", "0"], ["tun_id", "7"]]  # fmt: skip
    for extra in selectors:
        ip(netns, "rule", "add", "priority", "500", "from", "10.0.0.0/8", *extra, "table", "100")
    async with watching(netns, links=False, addresses=False, routes=False, rules=True) as view:
        await exact(netns, view, ["rule"])
        mine = [obj for (kind, _key), obj in view.state.items() if kind == "rule" and obj.priority == 500]
        assert len(mine) == len(selectors), [obj.to_json() for obj in mine]
