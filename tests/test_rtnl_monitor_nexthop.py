"""Nexthop objects as a monitor kind (issue 13), and the routes that use
them (``nhid``), which the kernel changes without a route notification.

What the kernel does (net/ipv4/nexthop.c, seen on this kernel with
``ip monitor all``; each test below fails on a view that believes only the
notifications):

- ``remove_nexthop()`` sends RTM_DELNEXTHOP only when asked by a user
  (``nlinfo``); ``__remove_nexthop_fib()`` then marks the IPv4 fib_infos
  using it dead and ``fib_flush()`` drops their routes with no
  RTM_DELROUTE, while the IPv6 routes go through ``ip6_del_rt()``, notified
  when ``nexthop_compat_mode`` is on (the default);
- removing a group's member (``remove_nh_grp_entry()``) sends RTM_NEWNEXTHOP
  for the group, but nothing for the routes whose multipath expansion
  changed; a group left empty is deleted (RTM_DELNEXTHOP) and its routes
  flushed silently;
- ``replace_nexthop()`` sends RTM_NEWNEXTHOP and, through
  ``nexthop_replace_notify()``, an RTM_NEWROUTE per route using it;
- ``nexthop_flush_dev()`` (a device going down or away, or losing its
  carrier) removes the nexthops on it with ``remove_nexthop(net, nh,
  NULL)``: no RTM_DELNEXTHOP, and their IPv4 routes go silently.
"""

from __future__ import annotations

import subprocess
from typing import Any

from aionlmmap import rtnl
from conftest import ip
from rtnl_helpers import quiet_ipv6
from test_rtnl_monitor_drift import exact, pair, routes_of, watching

KINDS = ["nexthop", "route"]


def wired(netns: str) -> None:
    quiet_ipv6(netns)
    pair(netns, "na0", "na1")
    pair(netns, "nb0", "nb1")
    ip(netns, "addr", "add", "192.0.2.1/24", "dev", "na0")
    ip(netns, "addr", "add", "198.51.100.1/24", "dev", "nb0")
    ip(netns, "addr", "add", "2001:db8:a::1/64", "dev", "na0", "nodad")


async def test_nexthop_objects_are_a_monitor_kind_keyed_by_id(netns: str) -> None:
    wired(netns)
    ip(netns, "nexthop", "add", "id", "1", "via", "192.0.2.2", "dev", "na0")
    async with watching(netns, links=False, addresses=False, routes=False, nexthops=True) as view:
        await exact(netns, view, ["nexthop"])
        assert [key for key in view.state if key[0] == "nexthop"] == [("nexthop", 1)]
        ip(netns, "nexthop", "add", "id", "2", "via", "198.51.100.2", "dev", "nb0")
        ip(netns, "nexthop", "add", "id", "3", "group", "1/2,3")
        ip(netns, "nexthop", "replace", "id", "1", "via", "192.0.2.9", "dev", "na0")
        ip(netns, "nexthop", "add", "id", "4", "blackhole")
        await exact(netns, view, ["nexthop"])
        assert view.state[("nexthop", 1)].gateway == "192.0.2.9"
        assert view.state[("nexthop", 3)].group == ((1, 1), (2, 3))
        ip(netns, "nexthop", "del", "id", "4")
        await exact(netns, view, ["nexthop"])
        assert ("nexthop", 4) not in view.state


async def test_deleting_a_nexthop_drops_its_ipv4_routes_silently(netns: str) -> None:
    wired(netns)
    for identifier, gateway, dev in (("1", "192.0.2.2", "na0"), ("2", "198.51.100.2", "nb0"), ("6", "2001:db8:a::2", "na0")):
        ip(netns, "nexthop", "add", "id", identifier, "via", gateway, "dev", dev)
    ip(netns, "nexthop", "add", "id", "10", "group", "1/2")
    async with watching(netns, links=False, addresses=False, routes=True, nexthops=True) as view:
        ip(netns, "route", "add", "203.0.113.0/24", "nhid", "1")
        ip(netns, "route", "add", "203.0.113.128/25", "nhid", "10", "table", "100")
        ip(netns, "route", "add", "192.0.2.128/25", "nhid", "6")
        ip(netns, "-6", "route", "add", "2001:db8:9::/64", "nhid", "6")
        await exact(netns, view, KINDS)
        # A member goes: the group is notified, the route through it is not.
        ip(netns, "nexthop", "del", "id", "2")
        await exact(netns, view, KINDS)
        # The last member goes: the group and both IPv4 routes go, silently.
        ip(netns, "nexthop", "del", "id", "1")
        await exact(netns, view, KINDS)
        assert routes_of(view, lambda route: route.nhid in (1, 10)) == []
        # An IPv6 nexthop: its IPv6 route is notified, its IPv4 route is not.
        ip(netns, "nexthop", "del", "id", "6")
        await exact(netns, view, KINDS)
        assert routes_of(view, lambda route: route.nhid is not None) == []


async def test_a_routes_only_view_follows_nexthop_deletion(netns: str) -> None:
    wired(netns)
    ip(netns, "nexthop", "add", "id", "1", "via", "192.0.2.2", "dev", "na0")
    async with watching(netns, links=False, addresses=False, routes=True) as view:
        ip(netns, "route", "add", "203.0.113.0/24", "nhid", "1")
        await exact(netns, view, ["route"])
        ip(netns, "nexthop", "del", "id", "1")
        await exact(netns, view, ["route"])
        assert not any(kind == "nexthop" for kind, _key in view.state)


async def test_replacing_a_nexthop_changes_its_routes_in_place(netns: str) -> None:
    wired(netns)
    ip(netns, "nexthop", "add", "id", "1", "via", "192.0.2.2", "dev", "na0")
    ip(netns, "nexthop", "add", "id", "2", "via", "198.51.100.2", "dev", "nb0")
    ip(netns, "nexthop", "add", "id", "10", "group", "1/2")
    async with watching(netns, links=False, addresses=False, routes=True, nexthops=True) as view:
        ip(netns, "route", "add", "203.0.113.0/24", "nhid", "1")
        ip(netns, "route", "append", "203.0.113.0/24", "via", "198.51.100.3")
        ip(netns, "route", "add", "203.0.113.128/25", "nhid", "10")
        await exact(netns, view, KINDS)
        # The route is the same route (the kernel knows it by its nexthop's
        # id): one route in the view with the new gateway, not two.
        ip(netns, "nexthop", "replace", "id", "1", "via", "192.0.2.7", "dev", "na0")
        ip(netns, "nexthop", "replace", "id", "2", "via", "192.0.2.8", "dev", "na0")
        await exact(netns, view, KINDS)
        assert [route["gateway"] for route in routes_of(view, lambda route: route.nhid == 1)] == ["192.0.2.7"]
        ip(netns, "nexthop", "replace", "id", "10", "group", "2")
        ip(netns, "nexthop", "replace", "id", "1", "blackhole")
        await exact(netns, view, KINDS)
        routes = {key for key in view.state if key[0] == "route" and view.state[key].nhid is not None}
        assert len(routes) == 2


async def test_a_device_going_down_removes_its_nexthops_silently(netns: str) -> None:
    wired(netns)
    ip(netns, "nexthop", "add", "id", "1", "via", "192.0.2.2", "dev", "na0")
    ip(netns, "nexthop", "add", "id", "2", "via", "198.51.100.2", "dev", "nb0")
    ip(netns, "nexthop", "add", "id", "10", "group", "1/2")
    async with watching(netns, links=False, addresses=False, routes=True, nexthops=True) as view:
        ip(netns, "route", "add", "203.0.113.0/24", "nhid", "1")
        ip(netns, "route", "add", "203.0.113.128/25", "nhid", "10", "table", "100")
        await exact(netns, view, KINDS)
        ip(netns, "link", "set", "na0", "down")
        await exact(netns, view, KINDS)
        assert sorted(key[1] for key in view.state if key[0] == "nexthop") == [2, 10]
        # The peer losing its carrier (NETDEV_CHANGE) does the same.
        ip(netns, "link", "set", "nb1", "down")
        await exact(netns, view, KINDS)
        assert not any(kind == "nexthop" for kind, _key in view.state)
        ip(netns, "link", "del", "nb0")
        await exact(netns, view, KINDS)


async def test_snapshot_holds_what_ip_nexthop_lists(netns: str) -> None:
    wired(netns)
    ip(netns, "nexthop", "add", "id", "1", "via", "192.0.2.2", "dev", "na0")
    ip(netns, "nexthop", "add", "id", "5", "group", "1")
    async with rtnl.open(netns=netns) as nl:
        snapshot = await nl.snapshot(["nexthop"])
    assert sorted(nexthop.id for nexthop in snapshot["nexthop"]) == [1, 5]


def test_a_route_using_a_nexthop_object_is_known_by_its_id() -> None:
    from aionlmmap.families.rtnl_objects import Nexthop, Route, RouteExtra

    def route(**fields: object) -> Route:
        return Route(family=2, table=254, dst="203.0.113.0", dst_len=24, extra=RouteExtra(nhid=1), **fields)  # type: ignore[arg-type]

    # What nexthop_compat_mode expands (gateway, device, multipath) is the
    # nexthop's, not the route's: the same route after `ip nexthop replace`.
    assert route(gateway="192.0.2.2", oif=3).key == route(gateway="192.0.2.7", oif=4).key
    assert route(gateway="192.0.2.2", oif=3).key == route(nexthops=(Nexthop(ifindex=3, gateway="192.0.2.2"),)).key
    other = Route(family=2, table=254, dst="203.0.113.0", dst_len=24, extra=RouteExtra(nhid=2), gateway="192.0.2.2", oif=3)
    assert route(gateway="192.0.2.2", oif=3).key != other.key
    plain = Route(family=2, table=254, dst="203.0.113.0", dst_len=24, gateway="192.0.2.2", oif=3)
    assert plain.key != Route(family=2, table=254, dst="203.0.113.0", dst_len=24, gateway="192.0.2.7", oif=3).key


async def test_a_routes_monitor_runs_where_the_kernel_has_no_nexthop_group(netns: str, monkeypatch: Any) -> None:
    # Linux < 5.3: RTNLGRP_NEXTHOP is past rtnetlink's groups, and joining it
    # fails with EINVAL (netlink_setsockopt). Routes must still be followed.
    import errno

    from aionlmmap import _sys
    from aionlmmap.families.rtnl_state import RTNLGRP_NEXTHOP

    join = _sys.add_membership

    def old_kernel_join(sock: Any, group: int) -> None:
        if group == RTNLGRP_NEXTHOP:
            raise OSError(errno.EINVAL, "Invalid argument")
        join(sock, group)

    monkeypatch.setattr(_sys, "add_membership", old_kernel_join)
    wired(netns)
    async with watching(netns, links=False, addresses=False, routes=True) as view:
        ip(netns, "route", "add", "203.0.113.0/24", "via", "192.0.2.2")
        await exact(netns, view, ["route"])
    async with rtnl.open(netns=netns) as nl:
        try:
            async for _event in nl.monitor(nexthops=True):
                raise AssertionError("a nexthop monitor started without its group")
        except OSError as error:
            assert error.errno == errno.EINVAL


async def test_resync_false_passes_nexthop_notifications_through(netns: str) -> None:
    import asyncio

    wired(netns)
    async with rtnl.open(netns=netns) as nl:
        events: list[tuple[str, int]] = []

        async def consume() -> None:
            async for event in nl.monitor(links=False, addresses=False, routes=False, nexthops=True, resync=False):
                events.append((event.action, event.obj.key))
                if len(events) == 3:
                    return

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.3)
        ip(netns, "nexthop", "add", "id", "7", "via", "192.0.2.2", "dev", "na0")
        ip(netns, "nexthop", "replace", "id", "7", "via", "192.0.2.3", "dev", "na0")
        ip(netns, "nexthop", "del", "id", "7")
        await asyncio.wait_for(task, 5)
    assert events == [("new", 7), ("new", 7), ("del", 7)]


async def test_without_compat_mode_ipv6_routes_go_silently_too(netns: str) -> None:
    # nexthop_compat_mode off: routes are dumped with their nhid alone, and
    # __remove_nexthop_fib() deletes the IPv6 ones with ip6_del_rt(net, f6i,
    # skip_notify=true): no RTM_DELROUTE on either family.
    wired(netns)
    subprocess.run(["ip", "netns", "exec", netns, "sysctl", "-q", "-w", "net.ipv4.nexthop_compat_mode=0"], check=True)
    ip(netns, "nexthop", "add", "id", "6", "via", "2001:db8:a::2", "dev", "na0")
    ip(netns, "nexthop", "add", "id", "7", "via", "192.0.2.2", "dev", "na0")
    async with watching(netns, links=False, addresses=False, routes=True, nexthops=True) as view:
        ip(netns, "-6", "route", "add", "2001:db8:9::/64", "nhid", "6")
        ip(netns, "-6", "route", "add", "2001:db8:8::/64", "nhid", "6", "table", "100")
        ip(netns, "route", "add", "203.0.113.0/24", "nhid", "7")
        await exact(netns, view, KINDS)
        ip(netns, "nexthop", "del", "id", "6")
        await exact(netns, view, KINDS)
        assert routes_of(view, lambda route: route.nhid == 6) == []
        # The device goes down: its nexthop goes unannounced, and the route
        # names no device to look for (no expansion without compat mode).
        ip(netns, "link", "set", "na0", "down")
        await exact(netns, view, KINDS)
        assert routes_of(view, lambda route: route.nhid is not None) == []
